"""Rules map_geotiff and map_png: map one unlabelled image with one case's model."""

import sys

from aerialseg import config
from aerialseg.jobs import prediction, runner

settings = config.with_run_options(snakemake.params.settings, snakemake.config, "map")
outputs = dict(snakemake.output.items())
calibration = snakemake.input.calibration[0] if snakemake.input.calibration else None  # predict.temperature_scaling
files = prediction.MapFiles(snakemake.input.image, **outputs, calibration=calibration)
sys.exit(runner.execute(prediction.map_images, snakemake.log[0], settings, snakemake.input.model, [files],
                    threads=snakemake.threads))
