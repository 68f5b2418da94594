"""Rule class_stats: class shares per label and class weights."""

from aerialseg import pipeline

pipeline.run(pipeline.class_stats, snakemake.log[0], snakemake.params.settings, dict(snakemake.input.items()),
             snakemake.output.stats, snakemake.output.weights)
