"""Rule class_stats: class shares per split and per tile, class weights."""

import sys

from aerialseg.jobs import runner, datasets
from aerialseg.config import Tile

tiles = {split: [Tile(*tile) for tile in listed] for split, listed in snakemake.params.tiles.items()}
sys.exit(runner.execute(datasets.class_stats, snakemake.log[0], snakemake.params.settings, tiles,
                      snakemake.output.stats, snakemake.output.weights, snakemake.output.tiles))
