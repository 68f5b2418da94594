"""Files in and out: `read` opens images (headers, bands, georeference, windowed reading with
the no-data mask, scaling to uint8), `labels` decodes labels to class ids, `write` writes
PNGs, Cloud-Optimised GeoTIFF maps and polygons; `spec` is the ``data`` section they share.

GDAL's block cache (``GDAL_CACHEMAX``) is set here, for reading and writing alike, unless the
environment sets it: GDAL's default, 5 % of the RAM, would let the cache of blocks read and
written grow past a gigabyte on big images.
"""

import os

GDAL_CACHE_MB = 128
"""GDAL's block cache in MB (``GDAL_CACHEMAX``), unless the environment sets it."""
os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE_MB))  # read by GDAL at its first block I/O
