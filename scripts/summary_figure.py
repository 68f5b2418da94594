"""Rule summary_figure: metrics against patch size."""

from aerialseg import pipeline

pipeline.run(pipeline.figure_summary, snakemake.log[0], snakemake.params.settings, snakemake.input[0], snakemake.output[0])
