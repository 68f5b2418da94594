"""Rule predict: mosaic prediction of both images with one run's model."""

from aerialseg import config, pipeline

settings = config.with_run_options(snakemake.params.settings, snakemake.config, "predict")
pipeline.run(pipeline.predict_images, snakemake.log[0], settings, snakemake.input.model, snakemake.input.images,
             snakemake.output.ids, snakemake.output.color, threads=snakemake.threads)
