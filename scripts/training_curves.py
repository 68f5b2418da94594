"""Rule training_curves: the per-epoch curves of one run."""

import sys

from aerialseg.jobs import runner, reporting
from aerialseg.config import Case, Run

init, size, repeat = snakemake.params.run
sys.exit(runner.execute(reporting.figure_curves, snakemake.log[0], Run(Case(init, size), repeat), snakemake.input[0], snakemake.output[0]))
