"""Rule summary_figure: metrics against patch size."""

import _package  # noqa: F401  (puts src/ on the path)
from aerialseg import pipeline

pipeline.run(pipeline.figure_summary, snakemake.log[0], snakemake.input[0], snakemake.output[0])
