"""Rule class_stats: class shares per split and per tile, class weights."""

from aerialseg import pipeline
from aerialseg.config import Tile

tiles = {image: [Tile(*tile) for tile in split] for image, split in snakemake.params.tiles.items()}
pipeline.run(pipeline.class_stats, snakemake.log[0], snakemake.params.settings, tiles,
             snakemake.output.stats, snakemake.output.weights, snakemake.output.tiles)
