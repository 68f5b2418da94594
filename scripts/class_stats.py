"""Rule class_stats: class shares per image and class weights."""

import _package  # noqa: F401  (puts src/ on the path)
from aerialseg import pipeline

pipeline.run(
    pipeline.class_stats, snakemake.log[0], snakemake.config,
    snakemake.output.stats, snakemake.output.weights,
)
