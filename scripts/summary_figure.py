"""Rule summary_figure: metrics against patch size."""

import sys

from aerialseg.jobs import runner, reporting

sys.exit(runner.execute(reporting.figure_summary, snakemake.log[0], snakemake.params.settings, snakemake.input[0], snakemake.output[0]))
