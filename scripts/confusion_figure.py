"""Rule confusion_figure: the confusion matrices of all cases on one image."""

import sys

from aerialseg.jobs import runner, reporting
from aerialseg.config import Case

confusions = {Case(init, size): path for (init, size), path in zip(snakemake.params.cases, snakemake.input, strict=True)}
sys.exit(runner.execute(reporting.figure_confusions, snakemake.log[0], snakemake.params.settings, snakemake.wildcards.split,
                      confusions, snakemake.output[0]))
