"""Rule class_stats: class shares per image and class weights."""

from aerialseg import pipeline

pipeline.run(
    pipeline.class_stats, snakemake.log[0], snakemake.config,
    snakemake.output.stats, snakemake.output.weights,
)
