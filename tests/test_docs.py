"""The front door: the licence, the configuration reference generated from the schema (it
cannot drift from it), and the shipped configs against the schema."""

import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from aerialseg import config as cfg
from aerialseg import config_reference

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["config.yaml", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "config").glob("*.yaml"))]


def test_the_configuration_reference_is_the_schemas():
    written = (ROOT / "docs/configuration.md").read_text()
    assert written == config_reference.render(cfg.load_schema()), (
        f"docs/configuration.md differs from the schema: regenerate it with `{config_reference.COMMAND}` "
        "(from the repository root, with this checkout's src/ importable) and commit it")


def _properties(node: dict, key: str = ""):
    """(key, schema node) of every property below ``node``: dotted, list items as ``[]``, the
    forms of a oneOf under the same key; a $ref's keys are those of its form (in $defs)."""
    for name, child in node.get("properties", {}).items():
        yield f"{key}.{name}".lstrip("."), child
        yield from _properties(child, f"{key}.{name}".lstrip("."))
    if isinstance(node.get("items"), dict):
        yield from _properties(node["items"], f"{key}[]")
    for branch in node.get("oneOf", []) + node.get("anyOf", []):
        yield from _properties(branch, key)


def test_every_key_of_the_schema_has_a_description_and_a_row_in_the_reference():
    schema = cfg.load_schema()
    reference = (ROOT / "docs/configuration.md").read_text()
    keys = list(_properties(schema)) + [item for form in schema["$defs"].values() for item in _properties(form)]
    assert len(keys) > 60
    assert [key for key, node in keys if not node.get("description")] == []
    assert [key for key, node in keys if f"| `{key}` |" not in reference and f"## `{key}`" not in reference] == []
    assert [name for name in schema["$defs"] if f"### `{name}`" not in reference] == []


def _unknown_keys(errors) -> list[str]:
    found = []
    for error in errors:
        if error.validator == "additionalProperties":
            found += [f"{error.json_path}.{key}" for key in error.instance if key not in error.schema["properties"]]
        found += _unknown_keys(error.context)
    return found


@pytest.mark.parametrize("name", CONFIGS)
def test_every_key_of_a_shipped_config_is_in_the_schema(name):
    """config.yaml and every config/*.yaml (parts to merge over it: required keys may be
    missing, unknown ones may not)."""
    config = yaml.safe_load((ROOT / name).read_text())
    validator = jsonschema.Draft202012Validator(cfg.load_schema())
    assert _unknown_keys(validator.iter_errors(config)) == []


def test_the_unknown_key_check_sees_keys_inside_tile_lists():
    config = {"data": {"train": [{"image": "a.png", "label": "a.png", "lable": "b.png"}]}, "trian": {}}
    validator = jsonschema.Draft202012Validator(cfg.load_schema())
    assert sorted(_unknown_keys(validator.iter_errors(config))) == ["$.data.train[0].lable", "$.trian"]


def test_the_licence_is_the_one_the_package_names():
    license_text = (ROOT / "LICENSE").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "MIT"}
    assert license_text.startswith("MIT License\n\nCopyright (c) 2026 the aerialseg authors\n")
    assert "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND" in license_text


def test_the_architecture_page_names_every_module_of_the_package():
    """docs/architecture.md stays true: every module it names exists, and every module of the
    package is named there."""
    import re

    page = (ROOT / "docs" / "architecture.md").read_text()
    package = ROOT / "src" / "aerialseg"
    modules = {str(p.relative_to(package).with_suffix("")) for p in package.rglob("*.py") if p.name != "__init__.py"}
    named = set(re.findall(r"`([a-z_]+(?:/[a-z_]+)?)`", page))
    missing = sorted(m for m in modules if m not in named and m.split("/")[-1] not in named)
    assert missing == [], f"modules missing from docs/architecture.md: {missing}"
    gone = sorted(n for n in named if "/" in n and n not in modules)
    assert gone == [], f"docs/architecture.md names modules that do not exist: {gone}"
