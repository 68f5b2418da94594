"""Rule predict: mosaic prediction of one image with one case's model."""

import _package  # noqa: F401  (puts src/ on the path)
from aerialseg import pipeline

pipeline.run(
    pipeline.predict_image, snakemake.log[0], snakemake.config,
    snakemake.input.model, snakemake.input.image,
    snakemake.output.ids, snakemake.output.color, threads=snakemake.threads,
)
