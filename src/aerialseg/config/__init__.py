"""The workflow's configuration, one room per concept (each imports only those below it):

- `validation`: the schema, loading and validating a config (defaults filled in, tile
  patterns expanded), the checks across keys and the error messages.
- `settings`: which settings each job reads and which only say how it runs, their
  fingerprint, and the settings derived from others.
- `layout`: where every file of ``results/`` goes, the demo scene's too.
- `study`: the study's objects: cases, runs, tiles, images to map, classes.

The names used across the project are handed on here (``config.validate``, ``config.Case``);
the layout's are used as ``layout.run_dir`` (``from aerialseg.config import layout``).
"""

from ..errors import ConfigError
from .settings import (IMAGE_KEYS, JOB_SETTINGS, LABEL_KEYS, RUN_OPTIONS, UPSTREAM, available_cores, block_gpus,
                       budget_reference,
                       fingerprint, job_settings, prediction_resources, result_settings, training_stride,
                       with_run_options, without_run_options)
from .study import (IGNORE_INDEX, SPLITS, Case, Run, Tile, cases, class_colors, class_names, map_cases, maps,
                    repeat_seed, repeats, runs, split_tiles, tiled, tiles)
from .validation import load, load_keys, load_schema, merge, sections, validate, validate_keys, with_data_defaults

__all__ = ["ConfigError", "IMAGE_KEYS", "JOB_SETTINGS", "LABEL_KEYS", "RUN_OPTIONS", "UPSTREAM", "available_cores",
           "block_gpus",
           "budget_reference", "fingerprint", "job_settings", "prediction_resources", "result_settings", "training_stride",
           "with_run_options", "without_run_options", "IGNORE_INDEX", "SPLITS", "Case", "Run", "Tile", "cases",
           "class_colors", "class_names", "map_cases", "maps", "repeat_seed", "repeats", "runs", "split_tiles",
           "tiled", "tiles", "load", "load_keys", "load_schema", "merge", "sections", "validate", "validate_keys",
           "with_data_defaults"]
