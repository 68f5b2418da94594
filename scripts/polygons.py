"""Rule polygons: a georeferenced map's regions as polygons in a GeoPackage."""

import sys

from aerialseg.jobs import prediction, runner

sys.exit(runner.execute(prediction.polygons, snakemake.log[0], snakemake.params.settings, snakemake.input.map,
                    snakemake.output[0], snakemake.input.confidence))
