"""Rule predict: mosaic prediction of every tile of both splits with one run's model."""

import sys

from aerialseg import config
from aerialseg.config import Case, Run
from aerialseg.jobs import prediction, runner

init, size, repeat = snakemake.params.run
settings = config.with_run_options(snakemake.params.settings, snakemake.config, "predict")
tiles = [prediction.TileFiles(**files) for files in snakemake.params.files]
calibration = snakemake.input.calibration[0] if snakemake.input.calibration else None  # predict.temperature_scaling
sys.exit(runner.execute(prediction.predict_images, snakemake.log[0], settings, snakemake.input.model, tiles,
                    threads=snakemake.threads, record=(Run(Case(init, size), repeat), snakemake.output.record),
                    calibration=calibration))
