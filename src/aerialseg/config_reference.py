"""The configuration reference, docs/configuration.md, generated from the config schema.

The schema (``schemas/config.schema.yaml``) is the one place where keys, types, defaults and
their meanings live; `render` writes them out as Markdown, every key in schema order, so the
reference cannot say other than what validation does. ``tests/test_docs.py`` fails when the
file in the repository differs from what `render` gives. Regenerate it with::

    python -m aerialseg.config_reference > docs/configuration.md
"""

from __future__ import annotations

import json
import sys
from typing import Iterator

COMMAND = "python -m aerialseg.config_reference > docs/configuration.md"
"""How to regenerate the reference, from the repository root."""

HEADER = ("| key | type | default | meaning |", "|---|---|---|---|")


def render(schema: dict) -> str:
    """The Markdown reference of ``schema``: a section per top-level key with a table of its
    keys (nested ones dotted, list items as ``[]``), then the shared forms that ``$ref``s
    name (``$defs``), each key with its type, default (or *required*) and description."""
    lines = ["# Configuration reference", "",
             f"<!-- Generated from src/aerialseg/schemas/config.schema.yaml by `{COMMAND}`: "
             "edit the schema, not this file. -->", "",
             _text(schema), "",
             "A config file given with `--configfile` is merged over `config.yaml` (sections key by key, lists "
             "replaced), and every key is checked against the schema before any job starts. A key whose default is "
             "*required* must be given (`config.yaml` gives them all); one whose default is *none* may be left out.",
             ""]
    required = set(schema.get("required", []))
    for name, node in schema["properties"].items():
        state = "required" if name in required else f"optional, default `{_value(node.get('default'))}`"
        lines += [f"## `{name}`", "", f"{_text(node)} ({state})", "", *HEADER]
        lines += [_row(*row) for row in _rows(node, name)] + [""]
    lines += ["## Forms used above", ""]
    for name, node in schema.get("$defs", {}).items():
        lines += _form(name, node)
    return "\n".join(lines).rstrip("\n") + "\n"


def _form(name: str, node: dict) -> list[str]:
    """The section of a shared form: its description and type, and a table of its keys."""
    lines = [f"### `{name}`", "", f"{_text(node)}: {_type(node)}.", ""]
    rows = list(_rows(node, ""))
    if rows:
        lines += [*HEADER, *(_row(*row) for row in rows), ""]
    return lines


def _rows(node: dict, prefix: str) -> Iterator[tuple[str, str, str, str]]:
    """(key, type, default, meaning) of every key below ``node``, depth first in schema
    order; ``$ref``s are not followed (their form has its own section)."""
    required = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        key = f"{prefix}.{name}" if prefix else name
        default = _value(child["default"]) if "default" in child else "*required*" if name in required else "*none*"
        yield key, _type(child), default, _text(child)
        yield from _rows(child, key)
        if isinstance(child.get("items"), dict):
            yield from _rows(child["items"], f"{key}[]")


def _row(key: str, kind: str, default: str, meaning: str) -> str:
    default = default if default.startswith("*") else f"`{default}`"
    return f"| `{key}` | {kind} | {default} | {meaning} |"


def _type(node: dict) -> str:
    """A node's type in words: a linked form name for a ``$ref``, the values of an enum,
    the alternatives of a oneOf, else its JSON type(s) with their bounds."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "enum" in node:
        return "one of " + ", ".join(f"`{_value(value)}`" for value in node["enum"])
    for alternatives in ("oneOf", "anyOf"):
        if alternatives in node:
            return " or ".join(_type(branch) for branch in node[alternatives])
    kinds = node.get("type", [])
    return " or ".join(_one_type(kind, node) for kind in ([kinds] if isinstance(kinds, str) else kinds)) or "any"


def _one_type(kind: str, node: dict) -> str:
    if kind == "array":
        items = _type(node["items"]) if "items" in node else "anything"
        if node.get("minItems") == 1 and "maxItems" not in node:
            return f"non-empty list of {items}"
        count = _bounds(node, "minItems", "maxItems", "", "")
        return f"list of {count} x {items}" if count else f"list of {items}"
    if kind in ("integer", "number"):
        bounds = _bounds(node, "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
        step = f", multiple of {node['multipleOf']}" if "multipleOf" in node else ""
        return kind + (f" {bounds}" if bounds else "") + step
    return {"null": "`null`", "boolean": "`true` or `false`"}.get(kind, kind)


def _bounds(node: dict, low: str, high: str, low_open: str, high_open: str) -> str:
    """A range in words: ``1..5``, ``≥ 1``, ``> 0``, ``< 1``, ``> 0 and < 1``."""
    if low in node and high in node:
        return str(node[low]) if node[low] == node[high] else f"{node[low]}..{node[high]}"
    parts = [f"{sign} {node[name]}" for sign, name in (("≥", low), (">", low_open), ("≤", high), ("<", high_open))
             if name and name in node]
    return " and ".join(parts)


def _value(value) -> str:
    """A value as YAML would take it: strings bare, the rest as JSON (null, true, [0, 1])."""
    return value if isinstance(value, str) else json.dumps(value)


def _text(node: dict) -> str:
    """A node's description on one line, fit for a table cell."""
    return " ".join(node.get("description", "").split()).replace("|", "\\|")


if __name__ == "__main__":
    from .config import load_schema

    sys.stdout.write(render(load_schema()))
