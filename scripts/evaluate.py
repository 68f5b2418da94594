"""Rule evaluate: scores, confusion matrix and mosaic figure of one prediction."""

import _package  # noqa: F401  (puts src/ on the path)
from aerialseg import pipeline
from aerialseg.config import Case

pipeline.run(
    pipeline.evaluate, snakemake.log[0], snakemake.config,
    Case(snakemake.wildcards.init, int(snakemake.wildcards.size)), snakemake.wildcards.image,
    snakemake.input.prediction, snakemake.output.metrics, snakemake.output.confusion, snakemake.output.get("mosaic"),
)
