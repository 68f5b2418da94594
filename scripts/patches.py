"""Rule patches: the patch index for one patch size."""

import _package  # noqa: F401  (puts src/ on the path)
from aerialseg import pipeline

pipeline.run(pipeline.patch_index, snakemake.log[0], snakemake.config, int(snakemake.wildcards.size), snakemake.output[0])
