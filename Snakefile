# Patch-based semantic segmentation of large aerial images: the six-case study.
# The logic lives in src/aerialseg; the rules below only wire files to it.

import os

from snakemake.utils import min_version

min_version("9.0")


# The study's defaults; a --configfile given on the command line is merged over them.
configfile: os.path.join(workflow.basedir, "config.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/predict.smk"
include: "rules/summary.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
        geotiff_outputs,
        maps_to_make,
