"""Rule prediction_geotiff: a georeferenced tile's prediction as a Cloud-Optimised GeoTIFF."""

import sys

from aerialseg.jobs import prediction, runner

sys.exit(runner.execute(prediction.tile_geotiff, snakemake.log[0], snakemake.params.settings, snakemake.input.image,
                    snakemake.input.ids, snakemake.output.geotiff, snakemake.output.style))
