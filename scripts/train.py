"""Rule train: train one case."""

from aerialseg import pipeline
from aerialseg.config import Case

pipeline.run(
    pipeline.train_case, snakemake.log[0], snakemake.config,
    Case(snakemake.wildcards.init, int(snakemake.wildcards.size)),
    snakemake.input.patches, snakemake.input.weights,
    snakemake.output.model, snakemake.output.history, threads=snakemake.threads,
)
