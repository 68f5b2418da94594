"""Rule summary: the comparison tables, the scores of every tile and the settings."""

import sys

from aerialseg.jobs import runner, reporting
from aerialseg.config import Case, Run

runs = [Run(Case(init, size), repeat) for init, size, repeat in snakemake.params.runs]
images, tiles = snakemake.params.images, snakemake.params.tiles
histories = dict(zip(runs, snakemake.input.histories, strict=True))
confusions = dict(zip([(run, image) for run in runs for image in images], snakemake.input.confusions, strict=True))
tile_keys = [(run, image, tile) for run in runs for image in images for tile in tiles[image]]
tile_confusions = dict(zip(tile_keys, snakemake.input.tile_confusions, strict=True))
calibrations = dict(zip(runs, snakemake.input.calibrations, strict=True))
inputs = reporting.SummaryInputs(histories, confusions, snakemake.input.class_stats, tile_confusions, calibrations)
sys.exit(runner.run(reporting.summarize, snakemake.log[0], snakemake.params.settings, inputs,
                    dict(snakemake.output.items())))
