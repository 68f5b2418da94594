"""Rule train: train one case."""

import _package  # noqa: F401  (puts src/ on the path)
from aerialseg import pipeline
from aerialseg.config import Case

pipeline.run(
    pipeline.train_case, snakemake.log[0], snakemake.config,
    Case(snakemake.wildcards.init, int(snakemake.wildcards.size)),
    snakemake.input.patches, snakemake.input.weights,
    snakemake.output.model, snakemake.output.history, snakemake.output.last,
    resume_path=snakemake.params.resume, threads=snakemake.threads, repeat=snakemake.params.repeat,
)
