"""Rule preflight: the input files checked from their headers, and which images are georeferenced."""

import sys

from aerialseg.jobs import preflight, runner

sys.exit(runner.execute(preflight.preflight, snakemake.log[0], snakemake.config, snakemake.output[0]))
