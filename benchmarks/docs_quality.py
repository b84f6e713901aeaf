"""Docs prose checks, quality: ours and write-good side by side on the labelled sets.

- Passive voice: ``mechanisms.docs.passive.find_passive`` against write-good with only
  its passive check on, on benchmarks/data/passive_sentences.tsv. A sentence is passive
  for a tool when the tool flags at least one passive in it; precision, recall and F1
  over sentences. Target: our F1 at least 0.05 above write-good's.
- Weasel words: ``mechanisms.docs.weasel.find_weasels`` against write-good with only its
  weasel check on, on benchmarks/data/weasel_sentences.tsv; precision and recall over
  spans (a found span is right when it overlaps a marked one). Target: our recall above
  write-good's at equal or better precision.

Each figure is given for the whole set and for its two parts: "dev" (what the rules were
written against) and "heldout" (written and labelled afterwards, never tuned on).

    .venv/bin/python benchmarks/docs_quality.py            # tables, a few seconds
    .venv/bin/python benchmarks/docs_quality.py --errors   # and every sentence ours gets wrong
    .venv/bin/python benchmarks/docs_quality.py --json out.json

node and npm must be on PATH; the pinned write-good is installed with ``npm ci`` on first
run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import docs_peer  # noqa: E402
from benchmarks.docs_sets import (  # noqa: E402
    Score,
    by_split,
    passive_sentences,
    score_sentences,
    score_spans,
    weasel_sentences,
)

from mechanisms.docs.passive import find_passive  # noqa: E402
from mechanisms.docs.weasel import find_weasels  # noqa: E402

PASSIVE_F1_MARGIN = 0.05


def _spans(found) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in found]


def passive_figures(show_errors: bool) -> dict:
    items = passive_sentences()
    texts = [s.text for s in items]
    flagged = {
        "ours": [bool(find_passive(t)) for t in texts],
        "write-good": [bool(f) for f in docs_peer.spans(texts, "passive")],
    }

    def scores(tool: str) -> dict[str, Score]:
        return by_split(
            items,
            lambda idx: score_sentences(
                [items[i].passive for i in idx], [flagged[tool][i] for i in idx]
            ),
        )

    out = {tool: scores(tool) for tool in flagged}
    categories = {}
    for passive, category in sorted({(not s.passive, s.category) for s in items}):
        idx = [i for i, s in enumerate(items) if (not s.passive, s.category) == (passive, category)]
        categories[f"{category} ({int(not passive)})"] = {
            "sentences": len(idx),
            **{tool: sum(flagged[tool][i] == items[i].passive for i in idx) for tool in flagged},
        }
    if show_errors:
        for item, ours, theirs in zip(items, flagged["ours"], flagged["write-good"], strict=True):
            if ours != item.passive:
                kind = "missed" if item.passive else "false alarm"
                peer = "write-good right" if theirs == item.passive else "write-good too"
                print(f"  passive {kind} [{item.category}, {item.split}; {peer}]: {item.text}")
    return {
        "sentences": len(items),
        "positives": sum(s.passive for s in items),
        **out,
        "right_by_category": categories,
    }


def weasel_figures(show_errors: bool) -> dict:
    items = weasel_sentences()
    texts = [s.text for s in items]
    found = {
        "ours": [_spans(find_weasels(t)) for t in texts],
        "write-good": docs_peer.spans(texts, "weasel"),
    }

    def scores(tool: str) -> dict[str, Score]:
        return by_split(
            items,
            lambda idx: score_spans([items[i].weasels for i in idx], [found[tool][i] for i in idx]),
        )

    out = {tool: scores(tool) for tool in found}
    # The same, counting only the words on write-good's own list: the difference that
    # comes from context (figures, quotes, idioms) and not from a longer list.
    listed = docs_peer.weasel_words_pattern()
    gold = [_listed(s.text, s.weasels, listed) for s in items]
    for tool in found:
        spans = [_listed(s.text, f, listed) for s, f in zip(items, found[tool], strict=True)]
        out[tool]["wg-list"] = score_spans(gold, spans)
    if show_errors:
        for item, ours in zip(items, found["ours"], strict=True):
            if score_spans([item.weasels], [ours]) != score_spans([item.weasels], [item.weasels]):
                got = [item.text[a:b] for a, b in ours]
                want = [item.text[a:b] for a, b in item.weasels]
                print(
                    f"  weasel [{item.category}, {item.split}] want {want} got {got}: {item.text}"
                )
    return {
        "sentences": len(items),
        "marked": sum(len(s.weasels) for s in items),
        **out,
    }


def _categories(categories: dict) -> None:
    print(f"  {'category (label)':<22} {'n':>4} {'ours right':>11} {'write-good right':>17}")
    for name, row in categories.items():
        print(f"  {name:<22} {row['sentences']:>4} {row['ours']:>11} {row['write-good']:>17}")


def _listed(text: str, spans, pattern) -> list[tuple[int, int]]:
    return [(a, b) for a, b in spans if pattern.search(text, a, b)]


def _table(title: str, figures: dict, columns: tuple[str, ...]) -> None:
    print(f"\n{title}")
    print(f"  {'tool':<11} {'part':<10} " + " ".join(f"{c:>9}" for c in columns))
    for tool in ("ours", "write-good"):
        for part, score in figures[tool].items():
            values = " ".join(f"{getattr(score, c):>9.3f}" for c in columns)
            print(f"  {tool:<11} {part:<10} {values}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--errors", action="store_true", help="print what ours gets wrong")
    parser.add_argument(
        "--categories", action="store_true", help="passive: sentences right per category"
    )
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH")
    args = parser.parse_args()
    quiet = args.json == "-"

    version = docs_peer.ensure_installed()
    passive = passive_figures(args.errors and not quiet)
    weasel = weasel_figures(args.errors and not quiet)
    ours_p, theirs_p = passive["ours"]["all"], passive["write-good"]["all"]
    ours_w, theirs_w = weasel["ours"]["all"], weasel["write-good"]["all"]
    verdict = {
        "passive_f1_gain": round(ours_p.f1 - theirs_p.f1, 4),
        "passive_target_met": ours_p.f1 >= theirs_p.f1 + PASSIVE_F1_MARGIN,
        "weasel_recall_gain": round(ours_w.recall - theirs_w.recall, 4),
        "weasel_target_met": ours_w.recall > theirs_w.recall
        and ours_w.precision >= theirs_w.precision,
    }
    if not quiet:
        print(f"write-good {version} on node {docs_peer.node_version()}")
        _table(
            f"Passive voice: {passive['sentences']} sentences, {passive['positives']} passive"
            " (precision, recall, F1 over sentences)",
            passive,
            ("precision", "recall", "f1"),
        )
        if args.categories:
            _categories(passive["right_by_category"])
        _table(
            f"Weasel words: {weasel['sentences']} sentences, {weasel['marked']} marked"
            " (precision, recall over spans; wg-list: only the words on write-good's list)",
            weasel,
            ("precision", "recall", "f1"),
        )
        print(
            f"\nPassive F1: ours {ours_p.f1:.3f}, write-good {theirs_p.f1:.3f}, "
            f"gain {verdict['passive_f1_gain']:+.3f}, ratio {ours_p.f1 / theirs_p.f1:.2f}x "
            f"(target +{PASSIVE_F1_MARGIN:.2f}): "
            f"{'met' if verdict['passive_target_met'] else 'NOT met'}"
        )
        print(
            f"Weasel recall: ours {ours_w.recall:.3f}, write-good {theirs_w.recall:.3f} "
            f"(ratio {ours_w.recall / theirs_w.recall:.2f}x) at "
            f"precision {ours_w.precision:.3f} vs {theirs_w.precision:.3f}: "
            f"{'met' if verdict['weasel_target_met'] else 'NOT met'}"
        )
    if args.json:
        doc = {
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
            "peer": {"write-good": version, "node": docs_peer.node_version()},
            "passive": _as_json(passive),
            "weasel": _as_json(weasel),
            "verdict": verdict,
        }
        text = json.dumps(doc, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0 if verdict["passive_target_met"] and verdict["weasel_target_met"] else 1


def _as_json(figures: dict) -> dict:
    return {
        key: {part: s.as_dict() if isinstance(s, Score) else s for part, s in value.items()}
        if isinstance(value, dict)
        else value
        for key, value in figures.items()
    }


if __name__ == "__main__":
    sys.exit(main())
