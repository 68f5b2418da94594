"""Rule export_onnx_int8: one run's model.onnx quantised to int8, calibrated on the training tiles."""

import sys

from aerialseg import quantize
from aerialseg.jobs import runner

sys.exit(runner.execute(quantize.export_int8, snakemake.log[0], snakemake.input.model, snakemake.output[0],
                    list(snakemake.input.images)))
