"""Loading and validating the workflow configuration.

`validate` checks a config against ``schemas/config.schema.yaml``, fills in the schema's
defaults and adds the checks a schema cannot express (unique class colours, prediction
stride, input files). Every problem is reported at once, each line naming the config key
or the file, so a bad config stops the workflow before any job starts.
"""

from __future__ import annotations

import copy
import difflib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

from .errors import ConfigError

IMAGES = ("train", "test")


@dataclass(frozen=True)
class Case:
    """One training run of the study: an initialisation and a patch size."""

    init: str
    size: int

    @property
    def name(self) -> str:
        return f"{self.init}_p{self.size}"

    @classmethod
    def parse(cls, name: str) -> "Case":
        init, _, size = name.rpartition("_p")
        if not init or not size.isdigit():
            raise ValueError(f"case name {name!r} is not of the form '{{init}}_p{{size}}'")
        return cls(init, int(size))


def load_schema() -> dict:
    text = resources.files("aerialseg").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


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


def validate(config: dict, *, producible: Iterable[str] = (), check_files: bool = True) -> dict:
    """Return a validated copy of ``config`` with defaults filled in, input paths
    normalised (``./a/b`` is ``a/b``) and tile patterns expanded (`expand_tile_patterns`), so
    that ``data.train`` and ``data.test`` are each one image/label pair or a list of them.

    ``producible`` lists input paths that a workflow rule writes (the demo scene), which
    need not exist yet. Raises `ConfigError` listing every problem found: the schema's, and
    the checks across keys of every part of the config that the schema did not reject.
    ``check_files=False`` reports no missing file (a pattern that matches none stays as written).
    """
    config = copy.deepcopy(config)
    _pattern_over_pair(config)
    schema = load_schema()
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = [line for e in errors for line in _problems(e)]
    _normalise_paths(config)
    problems += expand_tile_patterns(config, check_files)
    for check in _SEMANTIC_CHECKS:
        try:
            problems += check(config)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            pass  # that part of the config is malformed: the schema's message above says how
    if check_files:
        try:
            problems += _missing_files(config, {os.path.normpath(p) for p in producible})
        except (KeyError, TypeError, AttributeError):
            pass
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
    return config


def _normalise_paths(config: dict) -> None:
    data = config.get("data", {})
    for image in IMAGES:
        pairs = data.get(image)
        for pair in pairs if isinstance(pairs, list) else [pairs]:
            if isinstance(pair, dict):
                for kind, path in pair.items():
                    if isinstance(path, str) and path:
                        pair[kind] = os.path.normpath(path)
    if isinstance(data.get("predict"), list):
        data["predict"] = [os.path.normpath(p) if isinstance(p, str) and p else p for p in data["predict"]]


def load(*paths: str | Path, **kwargs: Any) -> dict:
    """The validated config of one or more YAML files, each merged over the ones before as
    Snakemake merges ``--configfile`` over ``config.yaml`` (sections merged key by key, lists
    and values replaced): ``load("config.yaml", "config/quick.yaml")`` is the quick study.
    ``kwargs`` go to `validate`; the demo scene need not exist yet (``producible``)."""
    kwargs.setdefault("producible", demo_files())
    config: dict = {}
    for path in map(Path, paths):
        try:
            layer = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
        merge(config, layer or {})
    return validate(config, **kwargs)


def _pattern_over_pair(config: dict) -> None:
    """Drop ``image`` and ``label`` from a split that also has a tile pattern's keys: Snakemake
    merges a ``--configfile`` over config.yaml key by key, so a pattern given over config.yaml's
    pair (the demo scene) arrives with that pair's keys beside its own, and the pattern is what
    the later file meant."""
    for image in IMAGES:
        split = config.get("data", {}).get(image) if isinstance(config.get("data"), dict) else None
        if isinstance(split, dict) and ("images" in split or "labels" in split):
            split.pop("image", None)
            split.pop("label", None)


def expand_tile_patterns(config: dict, check_files: bool = True) -> list[str]:
    """Replace, in place, each of ``data.train`` and ``data.test`` given as a tile pattern
    (``{images: "tiles/*.tif", labels: "labels/{stem}.png"}``) by the list of image/label pairs
    it stands for (`pattern_tiles`), so that everything after validation sees the list form.
    Returns the problems: a label path without ``{stem}`` and, with ``check_files``, a pattern
    that matches no file or an image without its label. A pattern that yields no pair is
    left as written."""
    problems = []
    for image in IMAGES:
        split = config.get("data", {}).get(image)
        if not (isinstance(split, dict) and isinstance(split.get("images"), str)
                and isinstance(split.get("labels"), str)):
            continue
        if "{stem}" not in split["labels"]:
            problems.append(f"data.{image}.labels: {split['labels']} has no {{stem}}, so every image would get the "
                            "same label (write e.g. labels/{stem}.png)")
            continue
        pairs, missing = pattern_tiles(split["images"], split["labels"], key=f"data.{image}")
        if pairs:
            config["data"][image] = pairs
        problems += missing if check_files else []
    return problems


def pattern_tiles(images: str, labels: str, key: str = "data.train") -> tuple[list[dict], list[str]]:
    """The image/label pairs of a tile pattern, sorted by image path, and the files missing:
    ``images`` is a glob pattern (or a path), ``labels`` a path in which ``{stem}`` stands for
    the image's file name without its extension. An image whose label file does not exist is
    left out, and named in the problems with the label path expected; ``key`` names the
    pattern there."""
    found = _expand(images)
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


def merge(base: dict, layer: dict) -> dict:
    """Merge ``layer`` into ``base`` in place: dicts recursively, anything else replaced."""
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _class_problems(config: dict) -> list[str]:
    problems = []
    data = config["data"]
    classes = data["classes"]
    names = [c["name"] for c in classes]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"data.classes: class name {name!r} appears more than once")
    colors = [tuple(c["color"]) for c in classes]
    for color in sorted({c for c in colors if colors.count(c) > 1}):
        problems.append(f"data.classes: colour {list(color)} is given to more than one class")
    if data["label_format"] != "index":  # index labels are decoded by value: colours only draw the figures
        for i, color in enumerate(data.get("ignore_colors", [])):
            if tuple(color) in colors:
                problems.append(f"data.ignore_colors[{i}]: {color} is also a class colour")
    if data["label_format"] == "index":
        values = [c.get("value") for c in classes]
        for i, value in enumerate(values):
            if value is None:
                problems.append(f"data.classes[{i}]: label_format 'index' needs a 'value' for class {names[i]!r}")
        for value in sorted({v for v in values if v is not None and values.count(v) > 1}):
            problems.append(f"data.classes: value {value} is given to more than one class")
        for i, value in enumerate(data["ignore_values"]):
            if value in values:
                problems.append(f"data.ignore_values[{i}]: {value} is also a class value")
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




def _tile_problems(config: dict) -> list[str]:
    problems = []
    for image in IMAGES:
        names = [tile.name for tile in tiles(config, image)]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"data.{image}: two tiles are named {name!r} (after their image files): their folders "
                            "would be one; rename a file")
    names = [tile.name for tile in maps(config)]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"data.predict: two images are named {name!r} (after their files): their maps would be one")
    for name in sorted({n for n in names if f"{n}_preview" in names}):
        problems.append(f"data.predict: the preview of {name!r} would be the map of {name + '_preview'!r}: rename one")
    cases_run = {case.name for case in cases(config)}
    for i, name in enumerate(config["predict"]["cases"]):
        if name not in cases_run:
            problems.append(f"predict.cases[{i}]: {name!r} is not a case of this study ({', '.join(sorted(cases_run))})")
    if config["experiment"]["split"] == "tiles" and len(tiles(config, "train")) < 2:
        problems.append("experiment.split: 'tiles' gives whole training tiles to validation, so data.train must "
                        "list at least two tiles")
    return problems


_SEMANTIC_CHECKS = (_class_problems, _range_problems, _stride_problems, _tile_problems)
"""The checks across keys; each runs when its part of the config is well formed."""


def _missing_files(config: dict, producible: set[str]) -> list[str]:
    problems = []
    for image in IMAGES:
        many = isinstance(config["data"][image], list)
        for i, pair in enumerate(config["data"][image] if many else [config["data"][image]]):
            for kind in ("image", "label"):
                path, key = pair[kind], f"data.{image}{f'[{i}]' if many else ''}.{kind}"
                if path in producible:
                    continue
                if Path(path).is_dir():
                    problems.append(f"{key}: {path} is a folder, not an image file")
                elif not Path(path).is_file():
                    problems.append(f"{key}: file {path} does not exist")
    for i, pattern in enumerate(config["data"]["predict"]):
        if not _expand(pattern):
            problems.append(f"data.predict[{i}]: {pattern} " + ("is a folder, not an image file" if Path(pattern).is_dir()
                                                                else "matches no file"))
    return problems


# --- tiles and images to map ---------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    """One image of a split with its label (None for an image to map), named after its file.
    ``folder`` is where its outputs go below the split's folder: "" when the split is one
    image/label pair (the study's layout), the tile's name when the split lists tiles."""

    name: str
    image: str
    label: str | None = None
    folder: str = ""

    def file(self, split_dir: str, name: str) -> str:
        """A file of this tile's outputs, e.g. ``file("results/cases/x/test", "metrics.csv")``."""
        return f"{split_dir}/{self.folder}/{name}" if self.folder else f"{split_dir}/{name}"


def tiled(config: dict, image: str) -> bool:
    """Whether ``data.{image}`` lists tiles (rather than being one image/label pair)."""
    return isinstance(config["data"][image], list)


def tiles(config: dict, image: str) -> list[Tile]:
    """The tiles of a split (``train`` or ``test``), in config order."""
    if not tiled(config, image):
        pair = config["data"][image]
        return [Tile(Path(pair["image"]).stem, pair["image"], pair["label"])]
    return [Tile(Path(p["image"]).stem, p["image"], p["label"], Path(p["image"]).stem) for p in config["data"][image]]


def split_tiles(config: dict) -> dict[str, list[Tile]]:
    """The tiles of both splits: {split: [Tile, ...]}."""
    return {image: tiles(config, image) for image in IMAGES}


def maps(config: dict) -> list[Tile]:
    """The images to map (``data.predict``, glob patterns expanded, sorted), without labels."""
    found = [path for pattern in config["data"].get("predict", []) for path in _expand(pattern)]
    return [Tile(Path(path).stem, path) for path in found]


def _expand(pattern: str) -> list[str]:
    import glob

    if glob.has_magic(pattern):
        return sorted(os.path.normpath(p) for p in glob.glob(pattern) if Path(p).is_file())
    return [pattern] if Path(pattern).is_file() else []


def map_cases(config: dict) -> list[Case] | None:
    """The cases that map ``data.predict``: those ``predict.cases`` lists, or None for the
    case with the best validation mIoU (known once the study has run)."""
    return [Case.parse(name) for name in config["predict"]["cases"]] or None


# --- what each job reads ----------------------------------------------------------------

LABEL_KEYS = ("classes", "label_format", "ignore_colors", "ignore_values")
"""The data keys that decode labels."""
IMAGE_KEYS = ("bands", "value_range", "nodata")
"""The data keys that read images."""

JOB_SETTINGS: dict[str, dict[str, tuple[str, ...] | None]] = {
    "demo_scene": {"demo": ("size", "seed")},
    "class_stats": {"data": LABEL_KEYS + IMAGE_KEYS, "train": ("weighting",)},
    "patches": {"data": IMAGE_KEYS, "experiment": ("stride", "val_fraction", "seed", "split", "block_size")},
    "train": {"data": LABEL_KEYS + IMAGE_KEYS, "experiment": ("seed",), "model": None,
              "train": ("epochs", "batch_size", "lr", "optimizer", "weight_decay", "weighting", "augment", "budget",
                        "precision", "memory_format")},
    "predict": {"predict": ("stride", "blend", "tta", "vectors", "min_area", "precision", "memory_format")},
    "evaluate": {"data": LABEL_KEYS + IMAGE_KEYS},
    "pool": {"data": ("classes",)},
    "map": {"predict": ("stride", "blend", "tta", "vectors", "min_area", "precision", "memory_format")},
    "export_onnx": {"predict": ("stride", "blend")},
    "training_curves": {},
    "summary": {"data": ("classes",), "experiment": ("seed", "repeats")},
    "conclusions": {"experiment": ("split", "stride", "patch_sizes"), "train": ("batch_size", "budget", "epochs")},
    "learning_figure": {},
    "confusion_figure": {"data": ("classes",)},
    "summary_figure": {"figures": ("metrics",)},
}
"""The config keys that shape each job's outputs, by section (None: the whole section); a
prediction job reads the data settings from the checkpoint, which records them.
A rule passes exactly this slice as its ``params``, so Snakemake reruns a job, and what
follows it, when one of them changes, and nothing else. The job reads nothing else of what
shapes its results; how it runs (`RUN_OPTIONS`) is read from the config and reruns nothing."""

RUN_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "train": {"train": ("device", "threads", "capture", "resume_seconds")},
    "predict": {"train": ("device", "threads"),
                "predict": ("batch_size", "device", "threads", "backend", "fold_batchnorm")},
    "map": {"train": ("device", "threads"), "predict": ("batch_size", "device", "threads", "backend", "fold_batchnorm")},
}
"""The keys that say how a job runs, not what it computes (the device, threads, capture, the
resume interval, the prediction batch, the prediction backend and batch-norm folding, which
change class ids by rounding at most): a change reruns nothing."""

UPSTREAM = {"train": ("class_stats", "patches"), "summary": tuple(JOB_SETTINGS)}
"""Jobs whose settings a job also records: a training job, those of the data it learns from;
the summary, every job's (the tables name the fingerprint of all that shaped them)."""


def _slice(config: dict, keys: dict[str, tuple[str, ...] | None]) -> dict:
    return {section: copy.deepcopy(config[section] if names is None else {k: config[section][k] for k in names})
            for section, names in keys.items()}


def _without_inert(config: dict) -> dict:
    """The config with the settings that the rest of it makes inert set to their neutral
    value, so that changing one reruns nothing: the colours ignored in index labels and the
    values ignored in colour labels, the classes' values outside index labels, the block
    size outside the blocks split, the smallest polygon without polygons."""
    config = copy.deepcopy(config)
    data, experiment, predict = config["data"], config["experiment"], config["predict"]
    if data["label_format"] == "index":
        data["ignore_colors"] = []
    else:
        data["ignore_values"] = []
        data["classes"] = [{k: v for k, v in c.items() if k != "value"} for c in data["classes"]]
    if experiment["split"] != "blocks":
        experiment["block_size"] = None
    if not predict["vectors"]:
        predict["min_area"] = 0
    return config


def job_settings(config: dict, job: str) -> dict:
    """The slice of the validated config that shapes ``job``'s outputs (`JOB_SETTINGS`), with
    the settings of the jobs it learns from (`UPSTREAM`) for the record; settings that the
    rest of the config makes inert are neutral (`_without_inert`)."""
    settings: dict[str, dict] = {}
    active = _without_inert(config)
    for name in (*UPSTREAM.get(job, ()), job):
        for section, values in _slice(active, JOB_SETTINGS[name]).items():
            settings.setdefault(section, {}).update(values)
    if job in ("train", "summary"):  # derived: the patch size a step or pixel budget is counted in
        settings["train"]["budget_size"] = budget_reference(config)
    return {section: settings[section] for section in sorted(settings)}


def result_settings(config: dict) -> dict:
    """Every setting that shapes some result: the union of all jobs' slices, without the
    figures' look and, when the data are the user's own, without the demo scene's."""
    settings = job_settings(config, "summary")
    settings.pop("figures", None)  # how figures look: only they are redrawn when it changes
    if not uses_demo(config):
        settings.pop("demo", None)
    return settings


DEMO_DIR = "results/demo"
"""Where the demo_scene rule writes the synthetic scene: results/demo/{train,test}/{image,label}.png."""


def demo_files() -> set[str]:
    """The input files that the workflow renders itself (they need not exist before it runs)."""
    return {f"{DEMO_DIR}/{image}/{kind}.png" for image in IMAGES for kind in ("image", "label")}


def uses_demo(config: dict) -> bool:
    return any(os.path.normpath(path) in demo_files()
               for image in IMAGES for tile in tiles(config, image) for path in (tile.image, tile.label))


def prediction_resources(config: dict) -> tuple[str, int]:
    """The device and CPU threads of a prediction job: ``predict.device`` and
    ``predict.threads``, where null (or absent) those of training."""
    predict, train = config["predict"], config.get("train", {})
    return predict.get("device") or train.get("device", "auto"), predict.get("threads") or train.get("threads", 1)


def with_run_options(settings: dict, config: dict, job: str) -> dict:
    """A job's settings and how it runs (`RUN_OPTIONS`), as the job's function takes them."""
    merged = copy.deepcopy(settings)
    for section, values in _slice(config, RUN_OPTIONS.get(job, {})).items():
        merged.setdefault(section, {}).update(values)
    return merged


def without_run_options(settings: dict, job: str) -> dict:
    """A job's settings as `job_settings` gives them: `with_run_options` undone."""
    kept = copy.deepcopy(settings)
    for section, names in RUN_OPTIONS.get(job, {}).items():
        for name in names:
            kept.get(section, {}).pop(name, None)
    return {section: values for section, values in kept.items() if values or section not in RUN_OPTIONS.get(job, {})}


def fingerprint(settings: dict) -> str:
    """A short, stable name for a set of settings: the first 12 hex digits of the sha256 of
    their canonical JSON."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


# --- cases, runs and their place in results/ ---------------------------------------------


def cases(config: dict) -> list[Case]:
    """The study's cases, initialisation-major: imagenet_p32, imagenet_p64, ..."""
    experiment = config["experiment"]
    return [Case(init, size) for init in experiment["inits"] for size in experiment["patch_sizes"]]


def repeats(config: dict) -> list[int]:
    """The repeats of every case, 1..experiment.repeats (1 is the study's run)."""
    return list(range(1, config["experiment"]["repeats"] + 1))


def repeat_seed(config: dict, repeat: int) -> int:
    """Repeat r trains with seed experiment.seed + r - 1; the patch split keeps experiment.seed."""
    return config["experiment"]["seed"] + repeat - 1


@dataclass(frozen=True)
class Run:
    """One training run: a case trained with the seed of its repeat (1 is the study's run).

    `dir` is where the run's files live; the rules build every path of a run from it and pass
    the run's case and repeat to the package, which never parses them back out of a path.
    """

    case: Case
    repeat: int = 1

    def __post_init__(self):
        if self.repeat < 1:
            raise ValueError(f"repeat {self.repeat}: repeats count from 1")

    PATTERN = "results/{prefix}cases/{case}"
    """`dir` as a pattern of the rules' wildcards (``prefix``, ``case``)."""

    @property
    def prefix(self) -> str:
        """Where the run's files (and its logs, below ``results/logs/``) go: nowhere special
        for repeat 1, ``repeats/{repeat}/`` for the others."""
        return "" if self.repeat == 1 else f"repeats/{self.repeat}/"

    @property
    def dir(self) -> str:
        """``results/cases/{case}`` for repeat 1, ``results/repeats/{repeat}/cases/{case}`` else."""
        return self.PATTERN.format(prefix=self.prefix, case=self.case.name)

    @property
    def label(self) -> str:
        """How messages name the run: the case, with its repeat when that is not the first."""
        return self.case.name if self.repeat == 1 else f"{self.case.name} (repeat {self.repeat})"


def runs(config: dict) -> list[Run]:
    """Every run of the study: each case, each repeat (repeat-major)."""
    return [Run(case, repeat) for repeat in repeats(config) for case in cases(config)]


def class_names(config: dict) -> list[str]:
    return [c["name"] for c in config["data"]["classes"]]


def class_colors(config: dict) -> list[tuple[int, int, int]]:
    return [tuple(c["color"]) for c in config["data"]["classes"]]


def budget_reference(config: dict) -> int | None:
    """The patch size whose epochs set a step or pixel budget (the smallest); None for the
    epochs budget, which needs none."""
    return None if config["train"]["budget"] == "epochs" else min(config["experiment"]["patch_sizes"])


def training_stride(config: dict, size: int) -> int:
    """The configured step between training patches, or the patch size when it is null."""
    return config["experiment"]["stride"] or size
