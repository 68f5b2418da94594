"""Rule training_curves: the per-epoch curves of one case."""

import _package  # noqa: F401  (puts src/ on the path)
from aerialseg import pipeline
from aerialseg.config import Case

pipeline.run(
    pipeline.figure_curves, snakemake.log[0],
    Case(snakemake.wildcards.init, int(snakemake.wildcards.size)), snakemake.input[0], snakemake.output[0],
)
