"""Rule confusion_figure: the confusion matrices of all cases on one image."""

import _package  # noqa: F401  (puts src/ on the path)
from aerialseg import pipeline

pipeline.run(
    pipeline.figure_confusions, snakemake.log[0], snakemake.config, snakemake.wildcards.image,
    list(snakemake.input), snakemake.output[0],
)
