"""Rule mosaic_figure: image, ground truth, prediction and errors side by side."""

import _package  # noqa: F401  (puts src/ on the path)
from aerialseg import pipeline
from aerialseg.config import Case

pipeline.run(
    pipeline.figure_mosaic, snakemake.log[0], snakemake.config,
    Case(snakemake.wildcards.init, int(snakemake.wildcards.size)), snakemake.wildcards.image,
    snakemake.input.prediction, snakemake.output[0],
)
