"""Rule evaluate: scores, confusion matrix and mosaic figure of one image or tile."""

import sys

from aerialseg.jobs import runner, reporting
from aerialseg.config import Case, Run

init, size, repeat = snakemake.params.run
image, tile = snakemake.params.image, snakemake.params.tile
files = reporting.EvaluationFiles(snakemake.input.image, snakemake.input.label, snakemake.input.prediction,
                                  snakemake.output.metrics, snakemake.output.confusion, snakemake.output.mosaic)
sys.exit(runner.run(reporting.evaluate, snakemake.log[0], snakemake.params.settings, Run(Case(init, size), repeat),
                    f"{image} tile {tile}" if tile else f"{image} image", files))
