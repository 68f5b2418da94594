"""Rule evaluate: scores and confusion matrix of one prediction."""

import _package  # noqa: F401  (puts src/ on the path)
from aerialseg import pipeline

pipeline.run(
    pipeline.evaluate, snakemake.log[0], snakemake.config, snakemake.wildcards.image,
    snakemake.input.prediction, snakemake.output.metrics, snakemake.output.confusion,
)
