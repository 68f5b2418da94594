# Config validation, the runs of the study, and the paths and settings every rule uses.
# The aerialseg package must be installed in the environment (make, or pip install -e .).

import re

from aerialseg import config as cfg
from aerialseg.images import InputError, georeference
from aerialseg.pipeline import check_inputs

IMAGES = list(cfg.IMAGES)
DEMO_FILES = cfg.demo_files()

# Stop before any job starts: the config against its schema, then the input files' headers.
try:
    config.update(cfg.validate(config, producible=DEMO_FILES))
    check_inputs(config, producible=DEMO_FILES)
except (cfg.ConfigError, InputError) as error:
    raise WorkflowError(str(error)) from None

CASES = cfg.cases(config)
RUNS = cfg.runs(config)
# A run's files live under results/{prefix}cases/{case}/: the package's Run gives both parts,
# and the rules look a run up by them (never parse it out of a path).
RUN_OF = {(run.prefix, run.case.name): run for run in RUNS}
# Images with a CRS and geotransform: their predictions are also written as GeoTIFF.
GEOREFERENCED = [image for image in IMAGES if georeference(config["data"][image]["image"]) is not None]
# Repeat 1 has no prefix; the others repeats/{repeat}/.
PREFIXES = "|".join(re.escape(run.prefix) for run in RUNS if run.prefix)


wildcard_constraints:
    prefix=f"(?:{PREFIXES})?",
    case="|".join(case.name for case in CASES),
    image="|".join(IMAGES),
    size=r"\d+",


def run_of(wildcards):
    """The run (case and repeat) that a job's wildcards name."""
    return RUN_OF[(wildcards.prefix, wildcards.case)]


def settings(job):
    """The slice of the config that shapes a job's outputs: its params, so that a change
    reruns the job and what follows it (aerialseg.config.JOB_SETTINGS)."""
    return cfg.job_settings(config, job)


def image_path(wildcards):
    return config["data"][wildcards.image]["image"]


def label_path(wildcards):
    return config["data"][wildcards.image]["label"]


def run_file(run, name):
    """A file of a run's folder, e.g. run_file(run, "history.csv")."""
    return f"{run.dir}/{name}"


def all_outputs():
    """Every file of the study: per-run outputs, the tables and the figures."""
    outputs = ["results/data/class_stats.csv", "results/data/class_weights.json"]
    for run in RUNS:
        outputs += [run_file(run, "settings.yaml")]
        outputs += [run_file(run, "training_curves.png")] if run.repeat == 1 else []
        for image in IMAGES:
            outputs += [run_file(run, f"{image}/prediction.tif")] if image in GEOREFERENCED else []
            outputs += [run_file(run, f"{image}/{name}") for name in ("prediction_color.png", "metrics.csv", "mosaic.png")]
    outputs += [f"results/summary/confusion_{image}.png" for image in IMAGES]
    outputs += [
        "results/summary/training.md",
        "results/summary/evaluation.md",
        "results/summary/per_class.csv",
        "results/summary/runs.csv",
        "results/summary/study_tables.md",
        "results/summary/settings.yaml",
        "results/summary/conclusions.md",
        "results/summary/metrics_vs_patch_size.png",
    ]
    return outputs
