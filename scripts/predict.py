"""Rule predict: mosaic prediction of both images with one case's model."""

import _package  # noqa: F401  (puts src/ on the path)
from aerialseg import pipeline

pipeline.run(
    pipeline.predict_images, snakemake.log[0], snakemake.config,
    snakemake.input.model, snakemake.input.images,
    snakemake.output.ids, snakemake.output.color, threads=snakemake.threads,
)
