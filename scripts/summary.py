"""Rule summary: the comparison tables and the settings that shaped them."""

from aerialseg import pipeline
from aerialseg.config import Case, Run

runs = [Run(Case(init, size), repeat) for init, size, repeat in snakemake.params.runs]
images = snakemake.params.images
histories = dict(zip(runs, snakemake.input.histories, strict=True))
confusions = dict(zip([(run, image) for run in runs for image in images], snakemake.input.confusions, strict=True))
pipeline.run(pipeline.summarize, snakemake.log[0], snakemake.params.settings, histories, confusions,
             snakemake.input.class_stats, dict(snakemake.output.items()))
