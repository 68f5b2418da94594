# Config validation, the list of cases and target helpers.

import sys
from pathlib import Path

# The package lives in src/ (the rule scripts find it through scripts/_package.py).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from aerialseg import config as cfg
from aerialseg.images import InputError, georeference
from aerialseg.pipeline import check_inputs

IMAGES = list(cfg.IMAGES)
DEMO_FILES = {f"results/demo/{image}/{kind}.png" for image in IMAGES for kind in ("image", "label")}

# Stop before any job starts: the config against its schema, then the input files' headers.
try:
    config.update(cfg.validate(config, producible=DEMO_FILES))
    check_inputs(config, producible=DEMO_FILES)
except (cfg.ConfigError, InputError) as error:
    raise WorkflowError(str(error)) from None

CASES = cfg.cases(config)
REPEATS = cfg.repeats(config)
# Images with a CRS and geotransform: their predictions are also written as GeoTIFF.
GEOREFERENCED = [image for image in IMAGES if georeference(config["data"][image]["image"]) is not None]


wildcard_constraints:
    init="|".join(["imagenet", "scratch"]),
    size=r"\d+",
    image="|".join(IMAGES),
    repeat=r"[2-9]|[1-9]\d+",  # repeat 1 is results/cases/ itself


def image_path(wildcards):
    return config["data"][wildcards.image]["image"]


def label_path(wildcards):
    return config["data"][wildcards.image]["label"]


def case_dir(case, repeat=1):
    """Where a case's run lives: results/cases/ for repeat 1, results/repeats/{repeat}/cases/ for the others."""
    return f"results/cases/{case.name}" if repeat == 1 else f"results/repeats/{repeat}/cases/{case.name}"


def run_dirs():
    """The folders of every run: each case, each repeat."""
    return [case_dir(case, repeat) for repeat in REPEATS for case in CASES]


def all_outputs():
    """Every file of the study: per-case outputs, the tables and the figures."""
    outputs = ["results/data/class_stats.csv", "results/data/class_weights.json"]
    for case in CASES:
        outputs.append(f"{case_dir(case)}/training_curves.png")
        for image in IMAGES:
            outputs += [f"{case_dir(case)}/{image}/prediction.tif"] if image in GEOREFERENCED else []
            outputs += [
                f"{case_dir(case)}/{image}/prediction_color.png",
                f"{case_dir(case)}/{image}/metrics.csv",
                f"{case_dir(case)}/{image}/mosaic.png",
            ]
    outputs += [f"results/summary/confusion_{image}.png" for image in IMAGES]
    outputs += [
        "results/summary/training.md",
        "results/summary/evaluation.md",
        "results/summary/per_class.csv",
        "results/summary/runs.csv",
        "results/summary/study_tables.md",
        "results/summary/conclusions.md",
        "results/summary/metrics_vs_patch_size.png",
    ]
    return outputs
