"""Rule export_onnx: one run's model.pt as model.onnx."""

import sys

from aerialseg import export
from aerialseg.jobs import runner

init, size, repeat = snakemake.params.run
sys.exit(runner.execute(export.export, snakemake.log[0], snakemake.input.model, snakemake.output[0],
                      snakemake.params.settings["predict"], record={"repeat": repeat}))
