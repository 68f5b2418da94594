"""Rule training_curves: the per-epoch curves of one run."""

from aerialseg import pipeline
from aerialseg.config import Case, Run

init, size, repeat = snakemake.params.run
pipeline.run(pipeline.figure_curves, snakemake.log[0], Run(Case(init, size), repeat), snakemake.input[0], snakemake.output[0])
