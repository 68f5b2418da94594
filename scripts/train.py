"""Rule train: train one run (a case and a repeat) on the training tiles."""

from aerialseg import config, pipeline
from aerialseg.config import Case, Run, Tile

init, size, repeat = snakemake.params.run
files = pipeline.TrainFiles(
    tiles=[Tile(*tile) for tile in snakemake.params.tiles], patches=snakemake.input.patches,
    weights=snakemake.input.weights, **dict(snakemake.output.items()), resume=snakemake.params.resume,
    reference_patches=snakemake.input.get("reference_patches"))
settings = config.with_run_options(snakemake.params.settings, snakemake.config, "train")
pipeline.run(pipeline.train_case, snakemake.log[0], settings, Run(Case(init, size), repeat), files,
             threads=snakemake.threads)
