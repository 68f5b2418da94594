"""Rule learning_figure: validation mIoU against steps and pixels, every run."""

from aerialseg import pipeline
from aerialseg.config import Case, Run

runs = [Run(Case(init, size), repeat) for init, size, repeat in snakemake.params.runs]
pipeline.run(pipeline.figure_learning, snakemake.log[0], dict(zip(runs, snakemake.input, strict=True)),
             snakemake.output[0])
