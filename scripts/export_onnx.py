"""Rule export_onnx: one run's model.pt as model.onnx."""

from aerialseg import export, pipeline

init, size, repeat = snakemake.params.run
pipeline.run(export.export, snakemake.log[0], snakemake.input.model, snakemake.output[0],
             snakemake.params.settings["predict"], record={"repeat": repeat})
