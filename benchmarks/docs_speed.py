"""Docs prose checks, speed: ours and write-good on the same 100,000-word document.

The document is the repository's own prose, README.md and docs/decisions/*.md: their
paragraphs shuffled with a fixed seed and repeated until there are ``--words`` words
(100,000), Markdown and all, so it reads like the decision docs the check is for. Both
tools get the whole text in one call, in-process, timed in a loop:

- full check: ``mechanisms.docs.check.check_document(text)`` (every rule, the
  statistics and the structure checks) against write-good with its default checks;
- passive voice only: ``mechanisms.docs.passive.find_passive(text)`` against write-good
  with only its passive check on;
- weasel words only: ``find_weasels(text)`` against write-good's weasel check.

Python is timed with ``perf_counter`` in this process, write-good with
``process.hrtime`` inside node (after a warm-up call, so its regexes are compiled); each
figure is the best of ``--rounds`` rounds (four times as many for one finder alone, which
takes milliseconds). Words per second, and ours / write-good.

    .venv/bin/python benchmarks/docs_speed.py              # a table, ~30 s
    .venv/bin/python benchmarks/docs_speed.py --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import docs_peer  # noqa: E402

from mechanisms.docs.passive import find_passive  # noqa: E402
from mechanisms.docs.weasel import find_weasels  # noqa: E402

SEED = 17
_WORD = re.compile(r"\S+")


def corpus(words: int, root: Path = ROOT) -> str:
    """``words`` words of the repository's prose, its paragraphs in a seeded order."""
    sources = [root / "README.md", *sorted((root / "docs" / "decisions").glob("*.md"))]
    paragraphs = [
        p.strip()
        for path in sources
        for p in path.read_text(encoding="utf-8").split("\n\n")
        if p.strip()
    ]
    rng = random.Random(SEED)
    out: list[str] = []
    count = 0
    while count < words:
        batch = paragraphs[:]
        rng.shuffle(batch)
        for paragraph in batch:
            out.append(paragraph)
            count += len(_WORD.findall(paragraph))
            if count >= words:
                break
    text = "\n\n".join(out)
    # Cut the last paragraph where the count reaches ``words`` exactly.
    cut = list(_WORD.finditer(text))[words - 1].end()
    return text[:cut] + "\n"


def best_seconds(fn: Callable[[str], object], text: str, rounds: int) -> float:
    fn(text)  # warm-up: caches, lazily built tables
    best = float("inf")
    gc.disable()
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            fn(text)
            best = min(best, time.perf_counter() - start)
    finally:
        gc.enable()
    return best


def _check_document() -> tuple[Callable[[str], object] | None, str]:
    try:
        from mechanisms.docs.check import check_document
    except ImportError as exc:  # the rule engine is not in this checkout
        return None, f"not measured: {exc}"
    return check_document, ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH")
    args = parser.parse_args()
    quiet = args.json == "-"

    version = docs_peer.ensure_installed()
    text = corpus(args.words)
    check_document, missing = _check_document()
    ours: dict[str, Callable[[str], object] | None] = {
        "all": check_document,
        "passive": find_passive,
        "weasel": find_weasels,
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.md"
        path.write_text(text, encoding="utf-8")
        for check, fn in ours.items():
            # One finder takes milliseconds, where load on the machine weighs most: more
            # rounds for those.
            rounds = args.rounds if check == "all" else 4 * args.rounds
            peer = docs_peer.time(path, check, rounds)
            peer_s = min(peer["seconds"])
            row = {
                "check": check,
                "write_good_seconds": round(peer_s, 5),
                "write_good_words_per_s": round(args.words / peer_s),
                "write_good_found": peer["found"],
            }
            if fn is None:
                row["ours"] = missing
            else:
                ours_s = best_seconds(fn, text, rounds)
                row |= {
                    "ours_seconds": round(ours_s, 5),
                    "ours_words_per_s": round(args.words / ours_s),
                    "ratio": round(peer_s / ours_s, 2),
                }
            rows.append(row)
    if not quiet:
        _print(rows, args.words, version)
    if args.json:
        doc = {
            "machine": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "load": os.getloadavg(),
            },
            "peer": {"write-good": version, "node": docs_peer.node_version()},
            "words": args.words,
            "rounds": args.rounds,
            "rows": rows,
        }
        out = json.dumps(doc, indent=2)
        print(out) if args.json == "-" else Path(args.json).write_text(out + "\n")
    return 0


def _print(rows: list[dict], words: int, version: str) -> None:
    print(f"{words:,} words of the repository's prose; write-good {version}, best of rounds")
    print(f"  {'check':<9} {'ours words/s':>14} {'write-good words/s':>20} {'ours / wg':>10}")
    for row in rows:
        if "ours_words_per_s" in row:
            ours, ratio = f"{row['ours_words_per_s']:,}", f"{row['ratio']:.2f}x"
        else:
            ours, ratio = "-", "-"
        print(f"  {row['check']:<9} {ours:>14} {row['write_good_words_per_s']:>20,} {ratio:>10}")
    for row in rows:
        if "ours" in row:
            print(f"  {row['check']}: ours {row['ours']}")


if __name__ == "__main__":
    sys.exit(main())
