"""Rule calibrate: one run's temperature (validation patches) and its test tiles' calibration."""

import sys

from aerialseg import config
from aerialseg.config import Case, Run, Tile
from aerialseg.jobs import calibration, runner

init, size, repeat = snakemake.params.run
files = calibration.CalibrationFiles(
    train_tiles=[Tile(*tile) for tile in snakemake.params.train], patches=snakemake.input.patches,
    test_tiles=[Tile(*tile) for tile in snakemake.params.test], **dict(snakemake.output.items()))
settings = config.with_run_options(snakemake.params.settings, snakemake.config, "calibrate")
sys.exit(runner.execute(calibration.calibrate, snakemake.log[0], settings, Run(Case(init, size), repeat),
                    snakemake.input.model, files, threads=snakemake.threads))
