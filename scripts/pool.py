"""Rule pool: the scores of a split's tiles, pooled."""

from aerialseg import pipeline

pipeline.run(pipeline.pool, snakemake.log[0], snakemake.params.settings, list(snakemake.input),
             snakemake.output.metrics, snakemake.output.confusion)
