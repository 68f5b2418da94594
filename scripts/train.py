"""Rule train: train one run (a case and a repeat)."""

from aerialseg import config, pipeline
from aerialseg.config import Case, Run

init, size, repeat = snakemake.params.run
files = pipeline.TrainFiles(**dict(snakemake.input.items()), **dict(snakemake.output.items()),
                            resume=snakemake.params.resume)
settings = config.with_run_options(snakemake.params.settings, snakemake.config, "train")
pipeline.run(pipeline.train_case, snakemake.log[0], settings, Run(Case(init, size), repeat), files,
             threads=snakemake.threads)
