"""Rules map_geotiff and map_png: map one unlabelled image with one case's model."""

from aerialseg import config, pipeline

settings = config.with_run_options(snakemake.params.settings, snakemake.config, "map")
pipeline.run(pipeline.map_images, snakemake.log[0], settings, snakemake.input.model, [snakemake.input.image],
             [snakemake.output.map], [snakemake.output.preview], threads=snakemake.threads)
