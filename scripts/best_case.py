"""Checkpoint best_case: the case with the best validation mIoU, which maps new imagery."""

import sys

from aerialseg.jobs import runner, prediction

sys.exit(runner.execute(prediction.best_case, snakemake.log[0], snakemake.input[0], snakemake.output[0]))
