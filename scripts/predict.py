"""Rule predict: mosaic prediction of both images with one run's model."""

import sys

from aerialseg import config
from aerialseg.jobs import runner, prediction
from aerialseg.config import Case, Run

init, size, repeat = snakemake.params.run
settings = config.with_run_options(snakemake.params.settings, snakemake.config, "predict")
sys.exit(runner.run(prediction.predict_images, snakemake.log[0], settings, snakemake.input.model, snakemake.input.images,
                      snakemake.output.ids, snakemake.output.color, threads=snakemake.threads,
                      record=(Run(Case(init, size), repeat), snakemake.output.record)))
