"""Checkpoint map_grid: the block grid of one map made as block jobs (predict.block_size)."""

import sys

from aerialseg.jobs import blocks, runner

sys.exit(runner.execute(blocks.block_grid, snakemake.log[0], snakemake.params.block_size, snakemake.input.model,
                    snakemake.input.image, snakemake.output[0]))
