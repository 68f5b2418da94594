"""Rule patches: the patch index of the training tiles for one patch size (with a tile column
when the training split lists tiles)."""

import sys

from aerialseg.jobs import runner, datasets

job = datasets.patch_index_of_tiles if snakemake.params.tiled else datasets.patch_index
sys.exit(runner.execute(job, snakemake.log[0], snakemake.params.settings, int(snakemake.wildcards.size),
                    snakemake.params.images, snakemake.output[0]))
