"""Rule map_gather: a map gathered from its block files."""

import sys

from aerialseg.jobs import blocks, prediction, runner

files = prediction.MapFiles(snakemake.input.image, **dict(snakemake.output.items()))
sys.exit(runner.execute(blocks.gather_blocks, snakemake.log[0], snakemake.input.grid, snakemake.input.blocks, files))
