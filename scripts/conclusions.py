"""Rule conclusions: the study's three conclusions checked against every run."""

from aerialseg import pipeline

sizes = snakemake.params.settings["experiment"]["patch_sizes"]
pipeline.run(pipeline.conclude, snakemake.log[0], snakemake.params.settings, snakemake.input.runs,
             dict(zip(sizes, snakemake.input.patches, strict=True)), snakemake.output.markdown, snakemake.output.html)
