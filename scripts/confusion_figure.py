"""Rule confusion_figure: the confusion matrices of all cases on one image."""

from aerialseg import pipeline

pipeline.run(
    pipeline.figure_confusions, snakemake.log[0], snakemake.config, snakemake.wildcards.image,
    list(snakemake.input), snakemake.output[0],
)
