"""Rule learning_figure: validation mIoU against steps and pixels, every run."""

import sys

from aerialseg.jobs import runner, reporting
from aerialseg.config import Case, Run

runs = [Run(Case(init, size), repeat) for init, size, repeat in snakemake.params.runs]
sys.exit(runner.execute(reporting.figure_learning, snakemake.log[0], dict(zip(runs, snakemake.input, strict=True)),
                      snakemake.output[0]))
