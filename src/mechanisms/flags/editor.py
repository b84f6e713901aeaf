"""The flag editor's form ⇄ configuration translation: the form's model built from a
configuration, a posted form read back into that model, the configuration built from the
model, the editing steps (add, remove and move rows) and where an error belongs in the
form. The route handlers stay in ``pages``.

The editor's form mirrors the configuration: every input is named by its path in it
(``rules.0.clauses.1.values``), so an error the service reports for a path lands next
to the input of that name. Adding, removing and moving rows posts the form back and
renders it again (htmx swaps it in; without JavaScript the whole page comes back), so
nothing typed is lost and no client-side templates are needed.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.datastructures import FormData

from mechanisms.core import inputs
from mechanisms.core.errors import InvalidInput, MechanismsError
from mechanisms.flags.domain import TARGETING_KEY

# Ops whose values are always text: a "2" typed there stays the string "2".
STRING_OPS = {
    "contains",
    "starts_with",
    "ends_with",
    "matches",
    "segment_match",
    "semver_eq",
    "semver_lt",
    "semver_lte",
    "semver_gt",
    "semver_gte",
}
NUMBER_RE = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")


def form_text(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name, default)
    return value if isinstance(value, str) else default


def _looks_typed(text: str) -> bool:
    return text in ("true", "false", "null") or bool(NUMBER_RE.fullmatch(text)) or text[:1] == '"'


def _values_text(op: str, values: list[Any]) -> str:
    lines = []
    for value in values:
        if isinstance(value, str) and (op in STRING_OPS or not _looks_typed(value)):
            lines.append(value)
        else:
            lines.append(json.dumps(value, ensure_ascii=False))
    return "\n".join(lines)


def _parse_values(op: str, text: str) -> list[Any]:
    """One value per line. Numbers and true/false are typed (except for text ops);
    quotes keep a value as text."""
    values: list[Any] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if len(line) >= 2 and line[0] == line[-1] == '"':
            try:
                values.append(json.loads(line))
                continue
            except ValueError:
                pass
        if op in STRING_OPS:
            values.append(line)
        elif line in ("true", "false"):
            values.append(line == "true")
        elif NUMBER_RE.fullmatch(line):
            values.append(json.loads(line))
        else:
            values.append(line)
    return values


def _pct_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _even_split(names: list[str]) -> list[dict[str, str]]:
    chosen = names[:2] if len(names) >= 2 else names
    if not chosen:
        return []
    share = math.floor(100_000 / len(chosen)) / 1000
    parts = [{"variant": n, "percent": _pct_text(share)} for n in chosen]
    parts[-1]["percent"] = _pct_text(round(100 - share * (len(chosen) - 1), 3))
    return parts


def _serve_model(serve: Any, names: list[str]) -> dict[str, Any]:
    serve = serve if isinstance(serve, dict) else {}
    split = serve.get("split")
    return {
        "mode": "split" if split is not None else "variant",
        "variant": serve.get("variant") or (names[0] if names else ""),
        "split": [
            {"variant": p.get("variant", ""), "percent": _pct_text(p.get("percent", ""))}
            for p in split
            if isinstance(p, dict)
        ]
        if split
        else _even_split(names),
        "bucket_by": serve.get("bucket_by") or TARGETING_KEY,
    }


def model_from_config(config: dict[str, Any]) -> dict[str, Any]:
    names = list(config.get("variants", {}))
    return {
        "enabled": bool(config.get("enabled", True)),
        "off_variant": config.get("off_variant", ""),
        "variants_text": json.dumps(config.get("variants", {}), indent=2, ensure_ascii=False),
        "prerequisites_text": json.dumps(config.get("prerequisites") or [], indent=2)
        if config.get("prerequisites")
        else "",
        "targets": {
            **{name: "" for name in names},
            **{k: "\n".join(v) for k, v in (config.get("targets") or {}).items()},
        },
        "rules": [
            {
                "id": rule.get("id", ""),
                "description": rule.get("description", ""),
                "clauses": [
                    {
                        "attribute": c.get("attribute", ""),
                        "op": c.get("op", "in"),
                        "values": _values_text(c.get("op", "in"), c.get("values", [])),
                        "negate": bool(c.get("negate", False)),
                    }
                    for c in rule.get("clauses", [])
                ],
                "serve": _serve_model(rule.get("serve"), names),
            }
            for rule in config.get("rules", [])
        ],
        "fallthrough": _serve_model(config.get("fallthrough"), names),
    }


def _indices(form: FormData, prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)(\.|$)")
    return sorted({int(m.group(1)) for key in form if (m := pattern.match(key))})


def _serve_from_form(form: FormData, prefix: str) -> dict[str, Any]:
    return {
        "mode": "split" if form_text(form, f"{prefix}.mode") == "split" else "variant",
        "variant": form_text(form, f"{prefix}.variant"),
        "split": [
            {
                "variant": form_text(form, f"{prefix}.split.{k}.variant"),
                "percent": form_text(form, f"{prefix}.split.{k}.percent").strip(),
            }
            for k in _indices(form, f"{prefix}.split.")
        ],
        "bucket_by": form_text(form, f"{prefix}.bucket_by").strip() or TARGETING_KEY,
    }


def model_from_form(form: FormData) -> dict[str, Any]:
    rules = []
    for i in _indices(form, "rules."):
        p = f"rules.{i}"
        rules.append(
            {
                "id": form_text(form, f"{p}.id").strip(),
                "description": form_text(form, f"{p}.description").strip(),
                "clauses": [
                    {
                        "attribute": form_text(form, f"{p}.clauses.{j}.attribute").strip(),
                        "op": form_text(form, f"{p}.clauses.{j}.op", "in"),
                        "values": form_text(form, f"{p}.clauses.{j}.values"),
                        "negate": form_text(form, f"{p}.clauses.{j}.negate") == "on",
                    }
                    for j in _indices(form, f"{p}.clauses.")
                ],
                "serve": _serve_from_form(form, f"{p}.serve"),
            }
        )
    return {
        "enabled": form_text(form, "enabled") == "on",
        "off_variant": form_text(form, "off_variant"),
        "variants_text": form_text(form, "variants"),
        "prerequisites_text": form_text(form, "prerequisites"),
        "targets": {
            key.removeprefix("targets."): form_text(form, key)
            for key in form
            if key.startswith("targets.")
        },
        "rules": rules,
        "fallthrough": _serve_from_form(form, "fallthrough"),
    }


def json_field(text: str, name: str, prefix: str = "") -> Any:
    try:
        return inputs.parse_json(text)
    except ValueError as exc:
        raise InvalidInput(
            f"{prefix}{name}: not valid JSON ({exc})", details={"field": f"{prefix}{name}"}
        ) from None


def _number(text: str) -> float | str:
    try:
        value = float(text)
    except ValueError:
        return text  # the service says what is wrong with it, next to the input
    return int(value) if value.is_integer() else value


def _serve_config(serve: dict[str, Any]) -> dict[str, Any]:
    if serve["mode"] == "split":
        out: dict[str, Any] = {
            "split": [
                {"variant": p["variant"], "percent": _number(p["percent"])} for p in serve["split"]
            ]
        }
        if serve["bucket_by"] != TARGETING_KEY:
            out["bucket_by"] = serve["bucket_by"]
        return out
    return {"variant": serve["variant"]}


def _split_keys(text: str) -> list[str]:
    return [k.strip() for k in re.split(r"[\n,]", text) if k.strip()]


def config_from_model(model: dict[str, Any]) -> dict[str, Any]:
    """The configuration the service gets: the whole of it, built from the form."""
    prerequisites = model["prerequisites_text"].strip()
    rules = []
    for rule in model["rules"]:
        clauses = []
        for c in rule["clauses"]:
            attribute = c["attribute"] or (TARGETING_KEY if c["op"] == "segment_match" else "")
            clause: dict[str, Any] = {
                "attribute": attribute,
                "op": c["op"],
                "values": _parse_values(c["op"], c["values"]),
            }
            if c["negate"]:
                clause["negate"] = True
            clauses.append(clause)
        out = {"id": rule["id"], "clauses": clauses, "serve": _serve_config(rule["serve"])}
        if rule["description"]:
            out["description"] = rule["description"]
        rules.append(out)
    return {
        "variants": json_field(model["variants_text"], "variants", "config."),
        "enabled": model["enabled"],
        "off_variant": model["off_variant"],
        "targets": {v: keys for v, text in model["targets"].items() if (keys := _split_keys(text))},
        "prerequisites": json_field(prerequisites, "prerequisites", "config.")
        if prerequisites
        else [],
        "rules": rules,
        "fallthrough": _serve_config(model["fallthrough"]),
    }


def variant_names(model: dict[str, Any], fallback: list[str]) -> list[str]:
    try:
        variants = inputs.parse_json(model["variants_text"])
    except ValueError:
        return fallback
    return list(variants) if isinstance(variants, dict) and variants else fallback


def _new_rule_id(model: dict[str, Any]) -> str:
    taken = {r["id"] for r in model["rules"]}
    n = len(model["rules"]) + 1
    while f"rule-{n}" in taken:
        n += 1
    return f"rule-{n}"


def _serve_at(model: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    if prefix == "fallthrough":
        return model["fallthrough"]
    m = re.fullmatch(r"rules\.(\d+)\.serve", prefix)
    if m and int(m.group(1)) < len(model["rules"]):
        return model["rules"][int(m.group(1))]["serve"]
    return None


def apply(model: dict[str, Any], op: str, names: list[str]) -> str | None:
    """Apply one editing step to the model; returns the path to focus afterwards."""
    verb, _, arg = op.partition(":")
    rules = model["rules"]

    def index(text: str, length: int) -> int | None:
        return int(text) if text.isdigit() and int(text) < length else None

    if verb == "add_rule":
        rules.append(
            {
                "id": _new_rule_id(model),
                "description": "",
                "clauses": [{"attribute": "", "op": "in", "values": "", "negate": False}],
                "serve": _serve_model({"variant": names[0] if names else ""}, names),
            }
        )
        return f"rules.{len(rules) - 1}.clauses.0.attribute"
    if verb in ("remove_rule", "up", "down", "add_clause"):
        i = index(arg, len(rules))
        if i is None:
            return None
        if verb == "remove_rule":
            rules.pop(i)
        elif verb == "up" and i > 0:
            rules[i - 1], rules[i] = rules[i], rules[i - 1]
            return f"rules.{i - 1}"
        elif verb == "down" and i + 1 < len(rules):
            rules[i + 1], rules[i] = rules[i], rules[i + 1]
            return f"rules.{i + 1}"
        elif verb == "add_clause":
            rules[i]["clauses"].append({"attribute": "", "op": "in", "values": "", "negate": False})
            return f"rules.{i}.clauses.{len(rules[i]['clauses']) - 1}.attribute"
        return None
    if verb == "remove_clause":
        i_text, _, j_text = arg.partition(":")
        i = index(i_text, len(rules))
        if i is not None:
            j = index(j_text, len(rules[i]["clauses"]))
            if j is not None:
                rules[i]["clauses"].pop(j)
        return None
    if verb in ("add_part", "remove_part"):
        prefix, _, k_text = arg.partition(":")
        serve = _serve_at(model, prefix)
        if serve is None:
            return None
        parts = serve["split"]
        if verb == "add_part":
            used = {p["variant"] for p in parts}
            free = [n for n in names if n not in used] or names or [""]
            parts.append({"variant": free[0], "percent": "0"})
            return f"{prefix}.split.{len(parts) - 1}.percent"
        k = index(k_text, len(parts))
        if k is not None:
            parts.pop(k)
    return None


def _anchors(model: dict[str, Any]) -> list[str]:
    """Every path the editor can show an error next to."""
    found = ["variants", "prerequisites", "off_variant", "enabled", "targets", "rules"]
    found += ["strategy", "monitors", "monitors.alarms", "monitors.guardrails", "base_number"]
    found += [f"targets.{name}" for name in model["targets"]]

    def serve(prefix: str, s: dict[str, Any]) -> None:
        found.extend([prefix, f"{prefix}.split", f"{prefix}.variant", f"{prefix}.bucket_by"])
        for k in range(len(s["split"])):
            found.extend([f"{prefix}.split.{k}", f"{prefix}.split.{k}.variant"])
            found.append(f"{prefix}.split.{k}.percent")

    serve("fallthrough", model["fallthrough"])
    for i, rule in enumerate(model["rules"]):
        found.extend([f"rules.{i}", f"rules.{i}.id", f"rules.{i}.description"])
        for j in range(len(rule["clauses"])):
            found.append(f"rules.{i}.clauses.{j}")
            found.extend(f"rules.{i}.clauses.{j}.{x}" for x in ("attribute", "op", "values"))
        serve(f"rules.{i}.serve", rule["serve"])
    return found


def place_error(exc: MechanismsError, model: dict[str, Any]) -> dict[str, Any]:
    """Where an error belongs in the editor and how to say it there."""
    field_name = exc.details.get("field") if isinstance(exc.details, dict) else None
    message = exc.message
    problem = message
    if field_name and message.startswith(f"{field_name}: "):
        problem = message[len(field_name) + 2 :]
    path = (field_name or "").removeprefix("config.").removeprefix("config")
    # A check across the whole configuration names the field inside its message.
    inner = re.match(r"^([A-Za-z_][\w.-]*): (.*)$", problem)
    if (
        not path
        and inner
        and inner.group(1).split(".")[0]
        in (
            "off_variant",
            "targets",
            "rules",
            "fallthrough",
            "variants",
            "prerequisites",
        )
    ):
        path, problem = inner.group(1), inner.group(2)
    anchor = None
    for candidate in _anchors(model):
        fits = path == candidate or path.startswith(candidate + ".")
        if fits and (anchor is None or len(candidate) > len(anchor)):
            anchor = candidate
    return {
        "message": message,
        "problem": problem,
        "anchor": anchor,
        "where": _where(anchor or path),
        "code": exc.code,
    }


def _where(path: str) -> str:
    words = []
    parts = path.split(".") if path else []
    i = 0
    while i < len(parts):
        part = parts[i]
        nxt = parts[i + 1] if i + 1 < len(parts) else None
        if part == "rules" and nxt and nxt.isdigit():
            words.append(f"Rule {int(nxt) + 1}")
            i += 2
        elif part == "clauses" and nxt and nxt.isdigit():
            words.append(f"condition {int(nxt) + 1}")
            i += 2
        elif part == "split" and nxt and nxt.isdigit():
            words.append(f"split row {int(nxt) + 1}")
            i += 2
        elif part == "targets" and nxt:
            words.append(f"allow list for {'.'.join(parts[i + 1 :])}")
            break
        else:
            words.append(
                {
                    "fallthrough": "Default rule",
                    "serve": "serve",
                    "off_variant": "Off variant",
                    "variants": "Variants",
                    "rules": "Rules",
                    "prerequisites": "Prerequisites",
                    "base_number": "Version",
                    "strategy": "Strategy",
                    "monitors": "Monitors",
                }.get(part, part)
            )
            i += 1
    text = " › ".join(words)
    return text[:1].upper() + text[1:]
