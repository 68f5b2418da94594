"""Which settings each job reads: the slice of the config that shapes its outputs
(`JOB_SETTINGS`, `job_settings`), which the rules pass as ``params`` so that Snakemake reruns
exactly the jobs a change affects; how it runs (`RUN_OPTIONS`), which reruns nothing; their
fingerprint; and the settings derived from others (the prediction's device and threads, the
training stride, the budget's reference patch size)."""

from __future__ import annotations

import copy
import hashlib
import json
import os

from .layout import uses_demo

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
    "predict": {"predict": ("stride", "blend", "tta", "vectors", "min_area", "precision", "memory_format",
                            "temperature_scaling")},
    "calibrate": {"data": LABEL_KEYS + IMAGE_KEYS, "predict": ("stride", "blend", "tta", "precision", "memory_format")},
    "evaluate": {"data": LABEL_KEYS + IMAGE_KEYS},
    "pool": {"data": ("classes",)},
    "map": {"predict": ("stride", "blend", "tta", "vectors", "min_area", "precision", "memory_format", "probabilities",
                        "confidence_threshold", "temperature_scaling")},
    "export_onnx": {"predict": ("stride", "blend")},
    "polygons": {"data": ("classes", "label_format", "ignore_values"), "predict": ("min_area",)},
    "training_curves": {},
    "summary": {"data": ("classes",), "experiment": ("seed", "repeats")},
    "conclusions": {"experiment": ("split", "stride", "patch_sizes"), "train": ("batch_size", "budget", "epochs")},
    "learning_figure": {},
    "confusion_figure": {"data": ("classes",)},
    "summary_figure": {"figures": ("metrics",)},
    "reliability_figure": {},
    # last: the jobs above read every key of these, so the study's settings record keeps its order
    "preflight": {"data": LABEL_KEYS + IMAGE_KEYS, "experiment": ("patch_sizes", "stride", "val_fraction", "split")},
    "prediction_geotiff": {"data": ("classes", "label_format", "ignore_values")},
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
    "calibrate": {"train": ("device", "threads"),
                  "predict": ("batch_size", "device", "threads", "backend", "fold_batchnorm")},
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
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


# --- settings derived from others ----------------------------------------------------------


def prediction_resources(config: dict) -> tuple[str, int]:
    """The device and CPU threads of a prediction job: ``predict.device`` and
    ``predict.threads``, where null those of training."""
    predict, train = config["predict"], config["train"]
    return predict["device"] or train["device"], predict["threads"] or train["threads"]


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity: a Slurm job's CPUs, say), which a
    job's threads never exceed."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def block_gpus(config: dict, gpus_seen: int) -> int:
    """The GPUs a block job of a map claims (``predict.block_size``; the rules' ``gpu``
    resource): none where it predicts on the CPU (the prediction device ``cpu``, or
    ``predict.backend: onnxruntime``), so that ``--cores`` alone says how many run at once;
    one on ``cuda``; with ``auto``, one where the machine that runs Snakemake sees a GPU
    (``gpus_seen``, known without torch: `backends.cuda_possible`), else none. On a cluster
    the profile's resources for the rule decide."""
    device, _ = prediction_resources(config)
    if device == "cpu" or config["predict"]["backend"] == "onnxruntime":
        return 0
    return 1 if device == "cuda" else min(1, gpus_seen)


def budget_reference(config: dict) -> int | None:
    """The patch size whose epochs set a step or pixel budget (the smallest); None for the
    epochs budget, which needs none."""
    from ..budget import reference_size

    return reference_size(config["train"], config["experiment"]["patch_sizes"])


def training_stride(config: dict, size: int) -> int:
    """The configured step between training patches, or the patch size when it is null."""
    return config["experiment"]["stride"] or size
