"""Rule patches: the patch index for one patch size."""

from aerialseg import pipeline

pipeline.run(pipeline.patch_index, snakemake.log[0], snakemake.params.settings, int(snakemake.wildcards.size),
             snakemake.input.image, snakemake.output[0])
