"""How a project tunes the checks: `.mechdoc.toml`, or `[tool.mechanisms.doc]` in
`pyproject.toml`, found by walking up from the checked file's folder (the first folder
with either wins; `.mechdoc.toml` wins inside one folder).

```toml
template = "decision"        # "decision" (default), "none", or one under [templates]
disable = ["adverb"]         # rule names, as `mech doc rules` lists them
max_sentence_words = 30

[words]
weasel = ["synergy"]         # extra entries for weasel, hedge, adverb, cliche
accept = ["very"]            # words and phrases never reported

[thresholds]                 # a failed threshold makes `mech doc check` exit 1
min_reading_ease = 30        # Flesch Reading Ease
max_grade = 14               # Flesch-Kincaid grade
max_passive_percent = 20     # sentences with passive voice
max_pages = 3
sections = true              # a required section missing or empty fails
max_findings = { weasel = 0 }

[templates.rfc]
sections = [
  { id = "summary", title = "Summary", aliases = ["summary", "tl;dr"] },
  { id = "risks", title = "Risks", aliases = ["risks"], required = false },
]
```

Unknown keys and unknown rule names are errors, never ignored: a typo would otherwise
switch nothing off and say nothing.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mechanisms.docs import rules
from mechanisms.docs.templates import BUILTIN, DECISION, ConfigError, SectionSpec, Template

CONFIG_FILE = ".mechdoc.toml"
PYPROJECT = "pyproject.toml"
NO_TEMPLATE = "none"


@dataclass(frozen=True)
class Thresholds:
    min_reading_ease: float | None = 30.0
    max_grade: float | None = None
    max_passive_percent: float | None = 20.0
    max_pages: float | None = 3.0
    sections: bool = True
    max_findings: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckConfig:
    template: Template | None = DECISION
    disabled: frozenset[str] = frozenset()
    extra_words: dict[str, tuple[str, ...]] = field(default_factory=dict)
    accepted: frozenset[str] = frozenset()
    max_sentence_words: int = 30
    thresholds: Thresholds = field(default_factory=Thresholds)
    templates: dict[str, Template] = field(default_factory=dict)  # defined by the project
    source: str | None = None  # the file it came from, for messages

    def rule_settings(self) -> rules.Settings:
        return rules.Settings(
            enabled=frozenset(rules.PROSE_RULES) - self.disabled,
            extra_words=self.extra_words,
            accepted=self.accepted,
            long_sentence_words=self.max_sentence_words,
        )

    def with_template(self, name: str) -> CheckConfig:
        return replace(self, template=template_named(name, self.templates))

    def with_disabled(self, names: list[str]) -> CheckConfig:
        return replace(self, disabled=self.disabled | check_rule_names(names, "--disable"))


def check_rule_names(names: list[str] | tuple[str, ...], where: str) -> frozenset[str]:
    unknown = [n for n in names if n not in rules.RULES]
    if unknown:
        raise ConfigError(
            f"{where}: unknown rule {unknown[0]!r}; rules are: {', '.join(rules.RULES)}",
            details={"unknown_rules": unknown},
        )
    return frozenset(names)


def template_named(name: str, templates: dict[str, Template]) -> Template | None:
    if name == NO_TEMPLATE:
        return None
    found = templates.get(name) or BUILTIN.get(name)
    if found is None:
        known = sorted({*BUILTIN, *templates, NO_TEMPLATE})
        raise ConfigError(f"unknown template {name!r}; known templates: {', '.join(known)}")
    return found


def find_config(start: Path) -> Path | None:
    """The nearest `.mechdoc.toml`, or `pyproject.toml` with a [tool.mechanisms.doc]
    table, in ``start`` (a folder) or any folder above it."""
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
        pyproject = folder / PYPROJECT
        if pyproject.is_file() and _doc_table(_read_toml(pyproject)) is not None:
            return pyproject
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def _doc_table(data: dict[str, Any]) -> dict[str, Any] | None:
    table = data.get("tool", {}).get("mechanisms", {}).get("doc")
    return table if isinstance(table, dict) else None


def load(path: Path) -> CheckConfig:
    data = _read_toml(path)
    if path.name == PYPROJECT:
        data = _doc_table(data) or {}
    return from_dict(data, str(path))


# --- reading the table, key by key --------------------------------------------------

_TOP = {"template", "disable", "max_sentence_words", "words", "thresholds", "templates"}
_THRESHOLDS = {
    "min_reading_ease",
    "max_grade",
    "max_passive_percent",
    "max_pages",
    "sections",
    "max_findings",
}
_SECTION = {"id", "title", "aliases", "required", "checks"}


def _refuse_unknown(table: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}"
        )


def _typed(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    # bool is an int in Python; a threshold of `true` is a typo, not 1.
    if isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {_kind_name(kind)}, got {value!r}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    _typed(value, list, where)
    return tuple(_typed(v, str, f"{where}[{i}]") for i, v in enumerate(value))


def _number(table: dict[str, Any], key: str, where: str, default: float | None) -> float | None:
    if key not in table:
        return default
    return float(_typed(table[key], (int, float), f"{where}.{key}"))


def _thresholds(table: Any, where: str) -> Thresholds:
    _typed(table, dict, where)
    _refuse_unknown(table, _THRESHOLDS, where)
    base = Thresholds()
    limits = table.get("max_findings", {})
    _typed(limits, dict, f"{where}.max_findings")
    check_rule_names(list(limits), f"{where}.max_findings")
    return Thresholds(
        min_reading_ease=_number(table, "min_reading_ease", where, base.min_reading_ease),
        max_grade=_number(table, "max_grade", where, base.max_grade),
        max_passive_percent=_number(table, "max_passive_percent", where, base.max_passive_percent),
        max_pages=_number(table, "max_pages", where, base.max_pages),
        sections=_typed(table.get("sections", True), bool, f"{where}.sections"),
        max_findings={k: _typed(v, int, f"{where}.max_findings.{k}") for k, v in limits.items()},
    )


def _section(raw: Any, where: str) -> SectionSpec:
    _typed(raw, dict, where)
    _refuse_unknown(raw, _SECTION, where)
    if "id" not in raw or "aliases" not in raw:
        raise ConfigError(f"{where}: a section needs an id and its heading aliases")
    section_id = _typed(raw["id"], str, f"{where}.id")
    return SectionSpec(
        id=section_id,
        title=_typed(raw.get("title", section_id), str, f"{where}.title"),
        aliases=_strings(raw["aliases"], f"{where}.aliases"),
        required=_typed(raw.get("required", True), bool, f"{where}.required"),
        checks=_strings(raw.get("checks", []), f"{where}.checks"),
    )


def _templates(table: Any, where: str) -> dict[str, Template]:
    _typed(table, dict, where)
    found = {}
    for name, raw in table.items():
        _typed(raw, dict, f"{where}.{name}")
        _refuse_unknown(raw, {"sections"}, f"{where}.{name}")
        sections = raw.get("sections", [])
        _typed(sections, list, f"{where}.{name}.sections")
        found[name] = Template(
            name,
            tuple(_section(s, f"{where}.{name}.sections[{i}]") for i, s in enumerate(sections)),
        )
    return found


def _words(table: Any, where: str) -> tuple[dict[str, tuple[str, ...]], frozenset[str]]:
    _typed(table, dict, where)
    _refuse_unknown(table, {*rules.LIST_RULES, "accept"}, where)
    extra = {k: _strings(v, f"{where}.{k}") for k, v in table.items() if k != "accept"}
    accepted = frozenset(
        " ".join(w.lower().split()) for w in _strings(table.get("accept", []), f"{where}.accept")
    )
    return extra, accepted


def from_dict(data: dict[str, Any], source: str = "configuration") -> CheckConfig:
    _refuse_unknown(data, _TOP, source)
    templates = _templates(data.get("templates", {}), f"{source}: templates")
    extra, accepted = _words(data.get("words", {}), f"{source}: words")
    max_words = int(
        _typed(data.get("max_sentence_words", 30), int, f"{source}: max_sentence_words")
    )
    if max_words < 1:
        raise ConfigError(f"{source}: max_sentence_words must be at least 1")
    return CheckConfig(
        template=template_named(
            _typed(data.get("template", "decision"), str, f"{source}: template"), templates
        ),
        disabled=check_rule_names(
            _strings(data.get("disable", []), f"{source}: disable"), f"{source}: disable"
        ),
        extra_words=extra,
        accepted=accepted,
        max_sentence_words=max_words,
        thresholds=_thresholds(data.get("thresholds", {}), f"{source}: thresholds"),
        templates=templates,
        source=source,
    )
