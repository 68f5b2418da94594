"""Rule summary: the comparison tables."""

import _package  # noqa: F401  (puts src/ on the path)
from aerialseg import pipeline

pipeline.run(
    pipeline.summarize, snakemake.log[0], snakemake.config,
    snakemake.input.histories, snakemake.input.confusions, snakemake.input.class_stats,
    dict(snakemake.output.items()),
)
