"""Rule evaluate: scores, confusion matrix and mosaic figure of one image or tile."""

import sys

from aerialseg.jobs import runner, reporting
from aerialseg.config import Case, Run

init, size, repeat = snakemake.params.run
split, tile = snakemake.params.split, snakemake.params.tile
files = reporting.EvaluationFiles(snakemake.input.image, snakemake.input.label, snakemake.input.prediction,
                                  snakemake.output.metrics, snakemake.output.confusion, snakemake.output.mosaic)
sys.exit(runner.execute(reporting.evaluate, snakemake.log[0], snakemake.params.settings, Run(Case(init, size), repeat),
                    f"{split} tile {tile}" if tile else f"{split} image", files))
