"""Rule demo_scene: render the synthetic scene."""

import sys

from aerialseg.jobs import runner, datasets

sys.exit(runner.execute(datasets.demo_scene, snakemake.log[0], snakemake.output.image, snakemake.output.label,
                      size=snakemake.params.size, seed=snakemake.params.seed))
