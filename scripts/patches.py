"""Rule patches: the patch index of the training tiles for one patch size."""

import sys

from aerialseg.jobs import runner, datasets

sys.exit(runner.run(datasets.patch_index, snakemake.log[0], snakemake.params.settings, int(snakemake.wildcards.size),
                      snakemake.params.images, snakemake.output[0], tiled=snakemake.params.tiled))
