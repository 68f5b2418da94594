"""Rule train: train one run (a case and a repeat) on the training tiles."""

import sys

from aerialseg import config
from aerialseg.jobs import runner, training
from aerialseg.config import Case, Run, Tile

init, size, repeat = snakemake.params.run
files = training.TrainFiles(
    tiles=[Tile(*tile) for tile in snakemake.params.tiles], patches=snakemake.input.patches,
    weights=snakemake.input.weights, **dict(snakemake.output.items()), resume=snakemake.params.resume,
    reference_patches=snakemake.input.get("reference_patches"))
settings = config.with_run_options(snakemake.params.settings, snakemake.config, "train")
sys.exit(runner.execute(training.train_case, snakemake.log[0], settings, Run(Case(init, size), repeat), files,
                      threads=snakemake.threads))
