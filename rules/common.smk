# Config validation, the list of cases and target helpers.

import sys
from pathlib import Path

# The package lives in src/ (the rule scripts find it through scripts/_package.py).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from aerialseg import config as cfg
from aerialseg.images import InputError
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


wildcard_constraints:
    init="|".join(["imagenet", "scratch"]),
    size=r"\d+",
    image="|".join(IMAGES),


def image_path(wildcards):
    return config["data"][wildcards.image]["image"]


def label_path(wildcards):
    return config["data"][wildcards.image]["label"]


def case_dir(case):
    return f"results/cases/{case.name}"


def all_outputs():
    """Every file of the study: per-case outputs, the tables and the figures."""
    outputs = ["results/data/class_stats.csv", "results/data/class_weights.json"]
    for case in CASES:
        outputs.append(f"{case_dir(case)}/training_curves.png")
        for image in IMAGES:
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
        "results/summary/metrics_vs_patch_size.png",
    ]
    return outputs
