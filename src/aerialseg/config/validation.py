"""Loading and validating the workflow configuration.

`validate` checks a config against ``schemas/config.schema.yaml``, fills in the schema's
defaults and adds the checks a schema cannot express (unique class colours, prediction
stride, input files); `validate_keys` does the same without looking at any input file. Every
problem is reported at once, each line naming the config key or the file, so a bad config
stops the workflow before any job starts.
"""

from __future__ import annotations

import copy
import difflib
import logging
import os
from importlib import resources
from pathlib import Path
from typing import Iterable

import jsonschema
import yaml

from ..errors import ConfigError
from .layout import companion_names, demo_files, preview_name
from .study import SPLITS, Case, cases, maps, matching_files, tiles

log = logging.getLogger("aerialseg")


def load_schema() -> dict:
    text = resources.files("aerialseg").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


# --- loading -------------------------------------------------------------------------------


def load(*paths: str | Path) -> dict:
    """The validated config of one or more YAML files, each merged over the ones before as
    Snakemake merges ``--configfile`` over ``config.yaml`` (sections merged key by key, lists
    and values replaced): ``load("config.yaml", "config/quick.yaml")`` is the quick study.
    Checked by `validate`; the demo scene need not exist yet (`layout.demo_files`)."""
    return validate(read(*paths), producible=demo_files())


def load_keys(*paths: str | Path) -> dict:
    """`load` checked by `validate_keys`: no input file is looked at."""
    return validate_keys(read(*paths))


def read(*paths: str | Path) -> dict:
    """One or more YAML files merged as `load` merges them, not validated."""
    config: dict = {}
    for path in map(Path, paths):
        try:
            layer = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
        merge(config, layer or {})
    return config


def merge(base: dict, layer: dict) -> dict:
    """Merge ``layer`` into ``base`` in place: dicts recursively, anything else replaced."""
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


# --- validating ----------------------------------------------------------------------------


def validate(config: dict, *, producible: Iterable[str] = ()) -> dict:
    """Return a validated copy of ``config`` with defaults filled in, input paths
    normalised (``./a/b`` is ``a/b``) and tile patterns expanded (`expand_tile_pattern`), so
    that ``data.train`` and ``data.test`` are each one image/label pair or a list of them.

    ``producible`` lists input paths that a workflow rule writes (the demo scene), which
    need not exist yet. Raises `ConfigError` listing every problem found: the schema's, the
    checks across keys of every part of the config that the schema did not reject, and the
    input files missing.
    """
    config, problems = _schema_checked(config)
    for split in SPLITS:
        written, missing = expand_tile_pattern(config, split)
        problems += written + missing
    problems += _cross_key_problems(config)
    try:
        problems += _missing_files(config, {os.path.normpath(p) for p in producible})
    except (KeyError, TypeError, AttributeError):
        pass
    _raise(problems)
    return config


def validate_keys(config: dict) -> dict:
    """`validate` without the input files: it reports no missing file, and a tile pattern
    that matches none stays as written."""
    config, problems = _schema_checked(config)
    for split in SPLITS:
        problems += expand_tile_pattern(config, split)[0]
    problems += _cross_key_problems(config)
    _raise(problems)
    return config


def sections(**given: dict) -> dict:
    """Config sections outside a config file (the command line's ``predict`` options, say),
    checked against their part of the schema and completed with its defaults: the schema stays
    the only place a default lives. ``sections(predict={"blend": "gaussian"}, train={})``."""
    schema = load_schema()
    part = {"type": "object", "$defs": schema.get("$defs", {}),
            "properties": {name: {key: rule for key, rule in schema["properties"][name].items() if key != "required"}
                           for name in given}}  # what a config file must give, the caller need not
    config = copy.deepcopy(given)
    validator = _with_defaults(jsonschema.Draft202012Validator)(part)
    _raise([line for e in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
            for line in _problems(e)])
    return config


def with_data_defaults(data: dict) -> dict:
    """A model's ``data`` settings (a checkpoint's or an ONNX file's) completed with the schema's
    defaults for any key its release did not record yet: a model.pt of an older aerialseg
    reads its images as it was trained to, the default of a key it predates."""
    defaults = {name: copy.deepcopy(rule["default"]) for name, rule in
                load_schema()["properties"]["data"]["properties"].items() if "default" in rule}
    return {**defaults, **data}


def _raise(problems: list[str]) -> None:
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))


def _schema_checked(config: dict) -> tuple[dict, list[str]]:
    """A copy of ``config`` with the schema's defaults filled in and its input paths
    normalised, and the schema's problems with it."""
    config = copy.deepcopy(config)
    _pattern_over_pair(config)
    data = config.get("data")
    given = tuple(key for key in ("bands", "band_numbers") if isinstance(data, dict) and data.get(key) is not None)
    validator = _with_defaults(jsonschema.Draft202012Validator)(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = [line for e in errors for line in _problems(e)]
    _normalise_paths(config)
    return config, problems + (_band_numbers(config, given) if not errors else [])


def _band_numbers(config: dict, given: tuple[str, ...]) -> list[str]:
    """``data.band_numbers`` (counting from 1) read into ``data.bands`` (counting from 0),
    the key the jobs read, and the other way round, so that a validated config holds both and
    validates again as it is. ``data.bands`` given alone still works, with a deprecation
    message; both given and naming different bands is a problem. ``given``: which of the two
    the config gave."""
    data = config["data"]
    from_numbers = [number - 1 for number in data["band_numbers"] or ()]
    if len(given) == 2 and data["bands"] != from_numbers:
        return [f"data.bands {data['bands']} and data.band_numbers {data['band_numbers']}: give only "
                "data.band_numbers (counting from 1, as GDAL and QGIS do); data.bands (counting from 0) is deprecated"]
    if given == ("bands",):
        log.warning("data.bands (counting from 0) is deprecated: write data.band_numbers: %s (counting from 1, as "
                    "GDAL and QGIS do)", [band + 1 for band in data["bands"]])
    data["bands"] = from_numbers or data["bands"]
    data["band_numbers"] = [band + 1 for band in data["bands"]]
    return []


def _with_defaults(validator_class):
    """A validator that also writes each property's schema default into the instance."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _normalise_paths(config: dict) -> None:
    data = config.get("data", {})
    for split in SPLITS:
        pairs = data.get(split)
        for pair in pairs if isinstance(pairs, list) else [pairs]:
            if isinstance(pair, dict):
                for kind, path in pair.items():
                    if isinstance(path, str) and path:
                        pair[kind] = os.path.normpath(path)
    if isinstance(data.get("predict"), list):
        data["predict"] = [os.path.normpath(p) if isinstance(p, str) and p else p for p in data["predict"]]


# --- the schema's messages -----------------------------------------------------------------


def _key(error: jsonschema.ValidationError) -> str:
    key = ""
    for part in error.absolute_path:
        key += f"[{part}]" if isinstance(part, int) else f".{part}"
    return key.lstrip(".") or "(top level)"


def _problems(error: jsonschema.ValidationError) -> list[str]:
    """The lines that report ``error``: for a value that fits none of a oneOf/anyOf's forms,
    those of the form it was meant to be (`_meant_form`), each naming its own key (a tile
    list's entry by index), rather than jsonschema's "is not valid under any of the given
    schemas"."""
    if error.validator in ("oneOf", "anyOf") and error.context:
        meant = _meant_form(error)
        if meant:
            return [line for sub in sorted(meant, key=lambda e: list(map(str, e.path))) for line in _problems(sub)]
    return [f"{_key(error)}: {_message(error)}"]


def _meant_form(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The errors of the oneOf/anyOf branch that ``error.instance`` was meant to fit: of the
    branches whose type it has, the one that knows most of its keys, then the one with the
    fewest errors; [] when it has the type of none (jsonschema's message says so)."""
    branches: dict[int, list[jsonschema.ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.schema_path[0], []).append(sub)
    candidates = [subs for subs in branches.values()
                  if not any(sub.validator == "type" and not sub.path for sub in subs)]

    def fit(subs):
        known = {name for sub in subs if not sub.path for name in sub.schema.get("properties", {})}
        keys = error.instance if isinstance(error.instance, dict) else {}
        return -sum(key in known for key in keys), len(subs)

    return min(candidates, key=fit, default=[])


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "multipleOf":
        return f"{error.instance} is not a multiple of {error.validator_value}"
    if error.validator == "additionalProperties":
        return _unknown_keys(error)
    if error.validator in ("oneOf", "anyOf") and error.context:
        types = dict.fromkeys(str(sub.validator_value) for sub in error.context
                              if sub.validator == "type" and not sub.path)
        if types:
            expected = " ".join(error.schema.get("description", "").split())
            return f"{error.instance!r} has none of the accepted types ({', '.join(types)})" + (
                f"; expected {expected}" if expected else "")
    if error.validator == "type" and isinstance(error.instance, str) and _is_number(error.instance):
        return (f"{error.instance!r} is a string, not a number: YAML reads {error.instance} as text "
                f"(exponents need a dot and a sign, write e.g. 1.0e-3 or 0.001)")
    return error.message


def _unknown_keys(error: jsonschema.ValidationError) -> str:
    """Name each unknown key with the known one it is closest to ("did you mean ...?"), or,
    where none is close, list the known keys."""
    known = list(error.schema.get("properties", {}))
    unknown = sorted(set(error.instance) - set(known))
    named = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), known, n=1)
        named.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    text = "unknown key(s) " + ", ".join(named)
    if len(named) > sum("did you mean" in n for n in named):
        text += f"; known keys: {', '.join(known)}"
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --- tile patterns -------------------------------------------------------------------------


def _pattern_over_pair(config: dict) -> None:
    """Drop ``image`` and ``label`` from a split that also has a tile pattern's keys: Snakemake
    merges a ``--configfile`` over config.yaml key by key, so a pattern given over config.yaml's
    pair (the demo scene) arrives with that pair's keys beside its own, and the pattern is what
    the later file meant."""
    for split in SPLITS:
        section = config.get("data", {}).get(split) if isinstance(config.get("data"), dict) else None
        if isinstance(section, dict) and ("images" in section or "labels" in section):
            section.pop("image", None)
            section.pop("label", None)


def expand_tile_pattern(config: dict, split: str) -> tuple[list[str], list[str]]:
    """Replace, in place, ``data.{split}`` given as a tile pattern (``{images: "tiles/*.tif",
    labels: "labels/{stem}.png"}``) by the list of image/label pairs it stands for
    (`pattern_tiles`), so that everything after validation sees the list form. Returns the
    problems of the pattern as written (a label path without ``{stem}``) and the files it
    misses (it matches no file, an image without its label). A pattern that yields no pair
    is left as written."""
    section = config.get("data", {}).get(split)
    if not (isinstance(section, dict) and isinstance(section.get("images"), str)
            and isinstance(section.get("labels"), str)):
        return [], []
    if "{stem}" not in section["labels"]:
        return [f"data.{split}.labels: {section['labels']} has no {{stem}}, so every image would get the "
                "same label (write e.g. labels/{stem}.png)"], []
    pairs, missing = pattern_tiles(section["images"], section["labels"], key=f"data.{split}")
    if pairs:
        config["data"][split] = pairs
    return [], missing


def pattern_tiles(images: str, labels: str, key: str = "data.train") -> tuple[list[dict], list[str]]:
    """The image/label pairs of a tile pattern, sorted by image path, and the files missing:
    ``images`` is a glob pattern (or a path), ``labels`` a path in which ``{stem}`` stands for
    the image's file name without its extension. An image whose label file does not exist is
    left out, and named in the problems with the label path expected; ``key`` names the
    pattern there."""
    found = matching_files(images)
    if not found:
        return [], [f"{key}.images: the pattern {images} " + ("is a folder, not an image file" if Path(images).is_dir()
                                                               else "matches no file")]
    pairs, problems = [], []
    for path in found:
        label = os.path.normpath(labels.replace("{stem}", Path(path).stem))
        if Path(label).is_file():
            pairs.append({"image": path, "label": label})
        else:
            problems.append(f"{key}.labels: image {path} has no label {label} (file not found; labels: {labels})")
    return pairs, problems


# --- checks across keys, and the input files -----------------------------------------------


def _cross_key_problems(config: dict) -> list[str]:
    """The problems of the checks across keys; each runs when its part of the config is well
    formed (else the schema's message says how it is not)."""
    problems = []
    for check in (_class_problems, _range_problems, _stride_problems, _block_problems, _tile_problems):
        try:
            problems += check(config)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            pass
    return problems


def _class_problems(config: dict) -> list[str]:
    data = config["data"]
    names = [c["name"] for c in data["classes"]]
    colors = [tuple(c["color"]) for c in data["classes"]]
    problems = [f"data.classes: class name {name!r} appears more than once"
                for name in sorted({n for n in names if names.count(n) > 1})]
    problems += [f"data.classes: colour {list(color)} is given to more than one class"
                 for color in sorted({c for c in colors if colors.count(c) > 1})]
    if data["label_format"] != "index":  # index labels are decoded by value: colours only draw the figures
        problems += [f"data.ignore_colors[{i}]: {color} is also a class colour"
                     for i, color in enumerate(data.get("ignore_colors", [])) if tuple(color) in colors]
    if data["label_format"] == "index":
        problems += _value_problems(data, names)
    return problems


def _value_problems(data: dict, names: list[str]) -> list[str]:
    """The class values of index labels: one to each class, none of them ignored."""
    values = [c.get("value") for c in data["classes"]]
    problems = [f"data.classes[{i}]: label_format 'index' needs a 'value' for class {names[i]!r}"
                for i, value in enumerate(values) if value is None]
    problems += [f"data.classes: value {value} is given to more than one class"
                 for value in sorted({v for v in values if v is not None and values.count(v) > 1})]
    problems += [f"data.ignore_values[{i}]: {value} is also a class value"
                 for i, value in enumerate(data["ignore_values"]) if value in values]
    return problems


def _range_problems(config: dict) -> list[str]:
    low_high = config["data"]["value_range"]
    if low_high is not None and not low_high[0] < low_high[1]:
        return [f"data.value_range: {low_high} must be [low, high] with low < high"]
    return []


def _stride_problems(config: dict) -> list[str]:
    stride = config["predict"]["stride"]
    smallest = min(config["experiment"]["patch_sizes"])
    if stride is not None and stride > smallest:
        return [f"predict.stride: {stride} is larger than the smallest patch size {smallest}, "
                "which would leave pixels unpredicted"]
    return []


def _block_problems(config: dict) -> list[str]:
    """A block holds at least one window of every case that maps (predict.cases, else any);
    maps made as blocks have no per-class probabilities or masked copy yet."""
    predict = config["predict"]
    block = predict["block_size"]
    if block is None:
        return []
    mapping = [Case.parse(name).size for name in predict["cases"]] or config["experiment"]["patch_sizes"]
    problems = [f"predict.block_size: {block} px is smaller than the {max(mapping)} px windows of the cases that map "
                "data.predict; use a block of at least one window (a few thousand px pay best)"] if block < max(mapping) else []
    problems += [f"predict.{key}: not available for maps made as blocks (predict.block_size {block}) yet; set one of "
                 "them to its default" for key, off in (("probabilities", False), ("confidence_threshold", None))
                 if predict[key] != off]
    return problems


def _tile_problems(config: dict) -> list[str]:
    problems = []
    for split in SPLITS:
        names = [tile.name for tile in tiles(config, split)]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"data.{split}: two tiles are named {name!r} (after their image files): their folders "
                            "would be one; rename a file")
    names = [tile.name for tile in maps(config)]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"data.predict: two images are named {name!r} (after their files): their maps would be one")
    for name in sorted({n for n in names if preview_name(n) in names}):
        problems.append(f"data.predict: the preview of {name!r} would be the map of {preview_name(name)!r}: rename one")
    for name in sorted({n for n in names if preview_name(n) not in names and set(companion_names(n)) & set(names)}):
        taken = sorted(set(companion_names(name)) & set(names))
        problems.append(f"data.predict: the files beside the map of {name!r} would be the maps of {taken}: rename one")
    cases_run = {case.name for case in cases(config)}
    for i, name in enumerate(config["predict"]["cases"]):
        if name not in cases_run:
            problems.append(f"predict.cases[{i}]: {name!r} is not a case of this study ({', '.join(sorted(cases_run))})")
    if config["experiment"]["split"] == "tiles" and len(tiles(config, "train")) < 2:
        problems.append("experiment.split: 'tiles' gives whole training tiles to validation, so data.train must "
                        "list at least two tiles")
    return problems


def _missing_files(config: dict, producible: set[str]) -> list[str]:
    problems = []
    for split in SPLITS:
        many = isinstance(config["data"][split], list)
        for i, pair in enumerate(config["data"][split] if many else [config["data"][split]]):
            for kind in ("image", "label"):
                path, key = pair[kind], f"data.{split}{f'[{i}]' if many else ''}.{kind}"
                if path in producible:
                    continue
                if Path(path).is_dir():
                    problems.append(f"{key}: {path} is a folder, not an image file")
                elif not Path(path).is_file():
                    problems.append(f"{key}: file {path} does not exist")
    for i, pattern in enumerate(config["data"]["predict"]):
        if not matching_files(pattern):
            problems.append(f"data.predict[{i}]: {pattern} " + ("is a folder, not an image file" if Path(pattern).is_dir()
                                                                else "matches no file"))
    return problems
