"""Rule demo_scene: render the synthetic scene."""

from aerialseg import pipeline

pipeline.run(pipeline.demo_scene, snakemake.log[0], snakemake.output.image, snakemake.output.label,
             size=snakemake.params.size, seed=snakemake.params.seed)
