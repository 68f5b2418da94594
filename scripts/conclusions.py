"""Rule conclusions: the study's three conclusions checked against every run."""

import sys

from aerialseg.jobs import runner, reporting

sizes = snakemake.params.settings["experiment"]["patch_sizes"]
sys.exit(runner.execute(reporting.conclude, snakemake.log[0], snakemake.params.settings, snakemake.input.runs,
                      dict(zip(sizes, snakemake.input.patches, strict=True)), snakemake.output.markdown, snakemake.output.html))
