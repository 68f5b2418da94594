"""Rule pool: the scores of a split's tiles, pooled."""

import sys

from aerialseg.jobs import runner, reporting

sys.exit(runner.execute(reporting.pool, snakemake.log[0], snakemake.params.settings, list(snakemake.input),
                      snakemake.output.metrics, snakemake.output.confusion))
