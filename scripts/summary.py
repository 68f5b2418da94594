"""Rule summary: the comparison tables, the scores of every tile and the settings."""

import sys

from aerialseg.jobs import runner, reporting
from aerialseg.config import Case, Run

runs = [Run(Case(init, size), repeat) for init, size, repeat in snakemake.params.runs]
splits, tiles = snakemake.params.splits, snakemake.params.tiles
histories = dict(zip(runs, snakemake.input.histories, strict=True))
confusions = dict(zip([(run, split) for run in runs for split in splits], snakemake.input.confusions, strict=True))
tile_keys = [(run, split, tile) for run in runs for split in splits for tile in tiles[split]]
tile_confusions = dict(zip(tile_keys, snakemake.input.tile_confusions, strict=True))
calibrations = dict(zip(runs, snakemake.input.calibrations, strict=True))
inputs = reporting.SummaryInputs(histories, confusions, snakemake.input.class_stats, tile_confusions, calibrations)
sys.exit(runner.execute(reporting.summarize, snakemake.log[0], snakemake.params.settings, inputs,
                    dict(snakemake.output.items())))
