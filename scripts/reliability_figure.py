"""Rule reliability_figure: the reliability diagram of one case on the test tiles."""

import sys

from aerialseg.jobs import reporting, runner

sys.exit(runner.execute(reporting.figure_reliability, snakemake.log[0], snakemake.wildcards.case,
                    snakemake.input.reliability, snakemake.input.scaled, snakemake.input.calibrations,
                    snakemake.output[0]))
