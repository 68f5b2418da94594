"""Rule predict: mosaic prediction of one image with one case's model."""

from aerialseg import pipeline

pipeline.run(
    pipeline.predict_image, snakemake.log[0], snakemake.config,
    snakemake.input.model, snakemake.input.image,
    snakemake.output.ids, snakemake.output.color, threads=snakemake.threads,
)
