"""Rule class_stats: class shares per split and per tile, class weights."""

from aerialseg import pipeline

pipeline.run(pipeline.class_stats, snakemake.log[0], snakemake.params.settings, snakemake.params.labels,
             snakemake.output.stats, snakemake.output.weights, snakemake.output.tiles)
