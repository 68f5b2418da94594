"""Rule demo_scene: render the synthetic scene."""

import _package  # noqa: F401  (puts src/ on the path)
from aerialseg import pipeline

pipeline.run(
    pipeline.demo_scene, snakemake.log[0], snakemake.output.image, snakemake.output.label,
    size=snakemake.params.size, seed=snakemake.params.seed,
)
