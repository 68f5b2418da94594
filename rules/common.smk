# Config validation, the runs and tiles of the study, and the paths and settings every rule uses.
# The aerialseg package must be installed in the environment (make, or pip install -e .).

import json
import os
import re

from aerialseg import config as cfg
from aerialseg.backends import cuda_possible
from aerialseg.config import layout
from aerialseg.errors import InputError
from snakemake.exceptions import IncompleteCheckpointException

SPLITS = list(cfg.SPLITS)
DEMO_FILES = layout.demo_files()

# Stop before any job starts: the config against its schema and across its keys. The input
# files are checked from their headers by the first job, preflight (rules/data.smk): parsing
# the workflow opens no image.
try:
    config.update(cfg.validate(config, producible=DEMO_FILES))
except (cfg.ConfigError, InputError) as error:
    raise WorkflowError(str(error)) from None


def georeferenced_images():
    """The input images that are georeferenced (their predictions and maps are GeoTIFFs), from
    the pre-flight record; for input functions: they wait for the preflight checkpoint."""
    with checkpoints.preflight.get().output[0].open() as record:
        return set(json.load(record)["georeferenced"])


CASES = cfg.cases(config)
RUNS = cfg.runs(config)
# Every path below results/ is built from the package's layout (aerialseg.config.layout).
# A run's files live in its folder, results/{prefix}cases/{case}/ (layout.RUN, which
# layout.run_dir fills in): the rules build every path of a run from RUN and look a run up by
# its two wildcards (never parse it out of a path).
RUN = layout.RUN
RUN_OF = {(layout.run_prefix(run), run.case.name): run for run in RUNS}
# A case's maps of new imagery are made with its first repeat's model: MAP_RUN[case name].
MAP_RUN = {case.name: cfg.Run(case) for case in CASES}
# Repeat 1 has no prefix; the others repeats/{repeat}/.
PREFIXES = "|".join(re.escape(layout.run_prefix(run)) for run in RUNS if layout.run_prefix(run))
DATA, SUMMARY = layout.DATA, layout.SUMMARY
# Each split is one image/label pair or a list of tiles; a tile's outputs go below the split's
# folder ({split}/, or {split}/{tile}/ when the split lists tiles): PLACES names them.
TILES = {split: cfg.tiles(config, split) for split in SPLITS}
PLACES = {f"{split}/{tile.folder}".rstrip("/"): (split, tile) for split in SPLITS for tile in TILES[split]}
POOLED = [split for split in SPLITS if cfg.tiled(config, split)]  # splits whose scores are pooled over tiles
# Unlabelled images to map (data.predict), by name; a map is a GeoTIFF where the image is
# georeferenced (map_suffixes), else a PNG.
MAPS = {tile.name: tile.image for tile in cfg.maps(config)}
# With predict.vectors every georeferenced map also gets its polygons in a GeoPackage.
VECTORS = config["predict"]["vectors"]
# Every map has its confidence raster beside it: prediction_confidence.tif beside a tile's prediction.
TILE_CONFIDENCE = layout.confidence_path("prediction.png").name
TILE_CONFIDENCE_STYLE = layout.style_path(TILE_CONFIDENCE).name

# With predict.block_size every georeferenced map of data.predict is made by block jobs (a grid,
# its blocks, the gather: docs/regions.md); null: each map is one job. A block job claims a GPU
# only where it predicts on one (aerialseg.config.block_gpus: the prediction device and backend;
# with auto, whether this machine has a GPU); on the CPU it claims its threads only.
BLOCK_SIZE = config["predict"]["block_size"]
BLOCK_GPUS = cfg.block_gpus(config, int(cuda_possible()))
# On the CPU a map job (map_geotiff, map_png, map_block) runs ONNX Runtime: it reads the run's
# model.onnx (rule export_onnx, once per case) instead of exporting model.pt again in every job
# (about 4 s and 700 MiB for importing torch).
MAP_ONNX = BLOCK_GPUS == 0 and config["predict"]["backend"] != "torch"


def alternatives(values):
    """A wildcard constraint matching exactly these values (never an empty match)."""
    return "|".join(re.escape(value) for value in sorted(values)) or "(?!)"


wildcard_constraints:
    prefix=f"(?:{PREFIXES})?",
    case=alternatives(case.name for case in CASES),
    split=alternatives(SPLITS),
    place=alternatives(PLACES),
    pooled=alternatives(POOLED),
    size=r"\d+",
    row=r"\d+",
    col=r"\d+",


def run_of(wildcards):
    """The run (case and repeat) that a job's wildcards name."""
    return RUN_OF[(wildcards.prefix, wildcards.case)]


def run_params(wildcards):
    """A run as the scripts take it: (init, size, repeat)."""
    run = run_of(wildcards)
    return run.case.init, run.case.size, run.repeat


def settings(job):
    """The slice of the config that shapes a job's outputs: its params, so that a change
    reruns the job and what follows it (aerialseg.config.settings.JOB_SETTINGS)."""
    return cfg.job_settings(config, job)


def tile_params(tiles):
    """Tiles as the scripts take them: (name, image, label, folder)."""
    return [(tile.name, tile.image, tile.label, tile.folder) for tile in tiles]


def run_file(run, name):
    """A file of a run's folder, e.g. run_file(run, "history.csv")."""
    return f"{layout.run_dir(run)}/{name}"


def tile_files(run_dir, name, splits=SPLITS):
    """A file of every tile of the splits, e.g. tile_files(RUN, "prediction.png")."""
    return [layout.tile_file(f"{run_dir}/{split}", tile, name) for split in splits for tile in TILES[split]]


def all_outputs():
    """Every file of the study: per-run outputs, the tables and the figures (rule all also asks
    for the GeoTIFF predictions, geotiff_outputs, and the maps of data.predict, maps_to_make)."""
    outputs = [f"{DATA}/class_stats.csv", f"{DATA}/class_weights.json", f"{DATA}/class_stats_tiles.csv"]
    for run in RUNS:
        outputs += [run_file(run, "settings.yaml")]
        outputs += [run_file(run, "training_curves.png")] if run.repeat == 1 else []
        for split in SPLITS:
            outputs += [run_file(run, f"{split}/metrics.csv")]
            for tile in TILES[split]:
                outputs += [layout.tile_file(f"{layout.run_dir(run)}/{split}", tile, name)
                            for name in ("prediction_color.png", "metrics.csv", "mosaic.png")]
    outputs += [f"{SUMMARY}/confusion_{split}.png" for split in SPLITS]
    outputs += [f"{SUMMARY}/reliability_{case.name}.png" for case in CASES]
    outputs += [
        f"{SUMMARY}/training.md",
        f"{SUMMARY}/evaluation.md",
        f"{SUMMARY}/per_class.csv",
        f"{SUMMARY}/runs.csv",
        f"{SUMMARY}/tiles.csv",
        f"{SUMMARY}/calibration.md",
        f"{SUMMARY}/study_tables.md",
        f"{SUMMARY}/settings.yaml",
        f"{SUMMARY}/conclusions.md",
        f"{SUMMARY}/metrics_vs_patch_size.png",
        f"{SUMMARY}/learning_curves.png",
    ]
    return outputs


# With predict.temperature_scaling the confidence takes each run's fitted temperature (rule calibrate).
SCALED = config["predict"]["temperature_scaling"]


def map_calibration(wildcards):
    """The calibration.csv of the run that maps (repeat 1 of the case), where the confidence is scaled."""
    return [run_file(MAP_RUN[wildcards.case], "calibration.csv")] if SCALED else []


def map_companions(map_pattern):
    """The files beside a map that the map rules write (prediction.MapFiles): its confidence
    raster always, its probabilities with predict.probabilities, its masked copy with
    predict.confidence_threshold."""
    files = {"confidence": str(layout.confidence_path(map_pattern)),
             "confidence_style": str(layout.style_path(layout.confidence_path(map_pattern)))}
    if config["predict"]["probabilities"]:
        files["probabilities"] = str(layout.probabilities_path(map_pattern))
    if config["predict"]["confidence_threshold"] is not None:
        files["masked"] = str(layout.masked_path(map_pattern))
    return files


def geotiff_outputs(wildcards):
    """The GeoTIFF prediction of every georeferenced tile of every run (rule prediction_geotiff),
    with its polygons under predict.vectors."""
    found = georeferenced_images()
    geotiffs = [layout.tile_file(f"{layout.run_dir(run)}/{split}", tile, "prediction.tif")
                for run in RUNS for split in SPLITS for tile in TILES[split] if tile.image in found]
    return geotiffs + [str(layout.vectors_path(path)) for path in geotiffs if VECTORS]


def map_suffixes():
    """Each map's format by its name: a GeoTIFF where its image is georeferenced, else a PNG."""
    found = georeferenced_images()
    return {name: layout.GEOTIFF if image in found else layout.PNG for name, image in MAPS.items()}


def map_image(wildcards, suffix):
    """The image a map rule for one format (layout.GEOTIFF or PNG) reads, where its map is of
    this format (map_suffixes); else a file that cannot exist, naming why, which tells
    Snakemake that the rule of the other format makes this map and the files beside it (both
    rules name those alike)."""
    path, made = MAPS[wildcards.name], map_suffixes()[wildcards.name]
    if made == suffix:
        return path
    return f"{path} (its map is a {made} file, made by the other map rule)"


def map_outputs(case):
    """The maps and previews (and polygons) of every image of data.predict, by one case."""
    suffixes = map_suffixes()
    files = {name: layout.map_files(layout.maps_dir(case), name, suffix) for name, suffix in suffixes.items()}
    vectors = [layout.vectors_path(files[name][0]) for name, suffix in suffixes.items()
               if suffix == layout.GEOTIFF and VECTORS]
    # Made as block jobs: a grid not yet made is asked for too, so that a map made by one job is
    # made again as blocks when predict.block_size is set (the gather's params cannot say so
    # before its grid exists). A grid that exists is left to the checkpoint: asked for here, it
    # would hide a lost block file from the gather.
    grids = [path for name, suffix in suffixes.items() if suffix == layout.GEOTIFF and BLOCK_SIZE
             for path in [layout.grid_file(layout.maps_dir(case), name)] if not path.exists()]
    return [str(path) for path in [files[name][0] for name in MAPS] + [files[name][1] for name in MAPS] + vectors
            + grids]


def maps_to_make(wildcards):
    """The maps of data.predict: by the cases predict.cases lists, or else by the case with the
    best validation mIoU, which the best_case checkpoint finds once the study has run."""
    if not MAPS:
        return []
    chosen = cfg.map_cases(config)
    if chosen is None:
        import yaml

        with checkpoints.best_case.get().output[0].open() as record:
            chosen = [MAP_RUN[yaml.safe_load(record)["case"]].case]
    return [path for case in chosen for path in map_outputs(case.name)]


def map_block_files(wildcards):
    """The block files of a map made as block jobs: one per block of its grid that holds data,
    as the map_grid checkpoint's file lists them."""
    folder = layout.maps_dir(wildcards.case)
    try:
        grid = checkpoints.map_grid.get(case=wildcards.case, name=wildcards.name).output[0]
    except IncompleteCheckpointException:
        # Snakemake 9 leaves this unresolved when the grid needs no new run but is found behind
        # the best_case checkpoint (a lost block, a killed gather): a grid that is up to date
        # (this block size, newer than its image and model) is read as it is.
        grid = layout.grid_file(folder, wildcards.name)
        if not current_grid(grid, MAPS[wildcards.name], layout.run_dir(MAP_RUN[wildcards.case])):
            raise
    with open(grid) as found:
        blocks = json.load(found)["blocks"]
    return [str(layout.block_file(folder, wildcards.name, row, col)) for row, col in blocks]


def current_grid(grid, image, run_dir):
    """Whether a map's grid file exists, is of predict.block_size and is newer than its image
    and the run's model files."""
    if not os.path.exists(grid):
        return False
    with open(grid) as found:
        if json.load(found)["block_size"] != BLOCK_SIZE:
            return False
    made = os.path.getmtime(grid)
    sources = [image] + [f"{run_dir}/{name}" for name in ("model.pt", "model.onnx") if os.path.exists(f"{run_dir}/{name}")]
    return all(os.path.getmtime(path) <= made for path in sources)
