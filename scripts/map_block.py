"""Rule map_block: one block of a map, from the block and its halo."""

import sys

from aerialseg import config
from aerialseg.jobs import blocks, runner

settings = config.with_run_options(snakemake.params.settings, snakemake.config, "map")
calibration = snakemake.input.calibration[0] if snakemake.input.calibration else None  # predict.temperature_scaling
files = blocks.BlockFiles(snakemake.input.image, snakemake.input.grid, tuple(snakemake.params.index), snakemake.output[0],
                          calibration)
sys.exit(runner.execute(blocks.map_block, snakemake.log[0], settings, snakemake.input.model, files,
                    threads=snakemake.threads))
