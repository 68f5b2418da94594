"""Rule conclusions: the study's three conclusions checked against every run."""

import _package  # noqa: F401  (puts src/ on the path)
from aerialseg import pipeline

pipeline.run(pipeline.conclude, snakemake.log[0], snakemake.config, snakemake.input.runs,
             snakemake.input.patches, snakemake.output.markdown, snakemake.output.html)
