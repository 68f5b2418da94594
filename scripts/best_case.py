"""Checkpoint best_case: the case with the best validation mIoU, which maps new imagery."""

from aerialseg import pipeline

pipeline.run(pipeline.best_case, snakemake.log[0], snakemake.input[0], snakemake.output[0])
