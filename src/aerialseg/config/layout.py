"""The layout of ``results/``: where every file of the study goes. The rules build their
paths from these patterns and functions, and the package and the console command name the
files of a map with them; nothing else spells out a folder of ``results/``.

    results/demo/{split}/{image,label}.png      the demo scene (`demo_file`)
    results/data/                               class statistics and weights (`DATA`), the
                                                pre-flight record (`PREFLIGHT`)
    results/patches/p{size}.csv                 the patch index of a size (`PATCHES`)
    results/{prefix}cases/{case}/               a run's files (`RUN`, `run_dir`); {prefix} is
                                                "" for repeat 1, repeats/{repeat}/ else
    results/{prefix}cases/{case}/{split}/[{tile}/]   a tile's outputs (`tile_file`)
    results/resume/{prefix}{case}/state.pt      a training job's resume state (`RESUME`)
    results/summary/                            the tables and figures (`SUMMARY`)
    results/maps/{case}/{name}.tif|png          the maps of data.predict and their previews,
                                                polygons, QGIS styles, confidence rasters, ...
                                                (`MAPS`, `map_files`, `style_path`,
                                                `vectors_path`, `COMPANIONS`)
    results/maps/{case}/blocks/{name}/          a map made as block jobs: its grid and its
                                                block files (`grid_file`, `block_file`)
"""

from __future__ import annotations

import os
from pathlib import Path

from .study import SPLITS, Run, Tile, tiles

DEMO_DIR = "results/demo"
"""Where the demo_scene rule writes the synthetic scene: results/demo/{train,test}/{image,label}.png."""
DATA = "results/data"
"""The class statistics and weights of the study's data."""
PATCHES = "results/patches/p{size}.csv"
"""The patch index of one patch size, as a pattern of the rules' wildcard ``size``."""
RUN = "results/{prefix}cases/{case}"
"""A run's folder (`run_dir`) as a pattern of the rules' wildcards (``prefix``, ``case``)."""
RESUME = "results/resume/{prefix}{case}/state.pt"
"""A training job's resume state, kept outside its outputs (Snakemake deletes those when a job fails)."""
SUMMARY = "results/summary"
"""The study's tables, conclusions and figures."""
MAPS = "results/maps/{case}"
"""The maps of data.predict by one case, as a pattern of the rules' wildcard ``case``."""
BEST_CASE = "results/maps/best_case.yaml"
"""The case with the best validation mIoU, which maps data.predict unless predict.cases names others."""
PREFLIGHT = f"{DATA}/preflight.json"
"""The pre-flight job's record (rule preflight, `jobs.preflight`): its checks passed, and which
input images are georeferenced (their predictions and maps are GeoTIFFs)."""
GEOTIFF, PNG = ".tif", ".png"
"""The suffixes of a map: a GeoTIFF where its image is georeferenced, else a PNG of class ids."""


def demo_file(split: str, kind: str) -> str:
    """A file of the demo scene: ``kind`` is ``image`` or ``label``."""
    return f"{DEMO_DIR}/{split}/{kind}.png"


def demo_files() -> set[str]:
    """The input files that the workflow renders itself (they need not exist before it runs)."""
    return {demo_file(split, kind) for split in SPLITS for kind in ("image", "label")}


def uses_demo(config: dict) -> bool:
    """Whether the study's data are (partly) the demo scene."""
    return any(os.path.normpath(path) in demo_files()
               for split in SPLITS for tile in tiles(config, split) for path in (tile.image, tile.label))


def run_prefix(run: Run) -> str:
    """Where the run's files (and its logs, below ``results/logs/``) go: nowhere special for
    repeat 1, ``repeats/{repeat}/`` for the others."""
    return "" if run.repeat == 1 else f"repeats/{run.repeat}/"


def run_dir(run: Run) -> str:
    """``results/cases/{case}`` for repeat 1, ``results/repeats/{repeat}/cases/{case}`` else."""
    return RUN.format(prefix=run_prefix(run), case=run.case.name)


def tile_file(split_dir: str, tile: Tile, name: str) -> str:
    """A file of a tile's outputs below its split's folder, e.g.
    ``tile_file("results/cases/x/test", tile, "metrics.csv")``."""
    return f"{split_dir}/{tile.folder}/{name}" if tile.folder else f"{split_dir}/{name}"


def maps_dir(case: str) -> str:
    """The folder of the maps by the case named ``case``."""
    return MAPS.format(case=case)


def map_files(out_dir, name: str, suffix: str) -> tuple[Path, Path]:
    """Where the map of the image named ``name`` (its file's stem) goes in ``out_dir``:
    ``{name}{suffix}`` (`GEOTIFF` or `PNG`), and its coloured preview ``{name}_preview.png``.
    With ``predict.vectors`` a georeferenced map also gets ``{name}.gpkg`` (`vectors_path`)."""
    return Path(out_dir) / f"{name}{suffix}", Path(out_dir) / f"{preview_name(name)}.png"


def grid_file(out_dir, name: str) -> Path:
    """The block grid of the map named ``name`` in ``out_dir`` (``predict.block_size``):
    ``blocks/{name}/grid.json``."""
    return Path(out_dir) / "blocks" / name / "grid.json"


def block_file(out_dir, name: str, row, col) -> Path:
    """The block file of block (``row``, ``col``) of the map named ``name`` in ``out_dir``:
    ``blocks/{name}/{row}_{col}.npz``, beside its grid."""
    return Path(out_dir) / "blocks" / name / f"{row}_{col}.npz"


def preview_name(name: str) -> str:
    """The name of the preview of the map named ``name``: the map of an image so named would
    overwrite it."""
    return f"{name}_preview"


COMPANIONS = ("preview", "confidence", "probabilities", "masked")
"""What may lie beside a map ``{name}.tif|png``, each as ``{name}_{companion}``: its preview,
its confidence raster, its per-class probabilities, its masked map."""


def companion_names(name: str) -> list[str]:
    """The names of the files beside the map named ``name`` (`COMPANIONS`): the map of an image
    so named would overwrite one of them."""
    return [f"{name}_{companion}" for companion in COMPANIONS]


def confidence_path(map_path) -> Path:
    """A map's confidence raster: ``{name}_confidence.tif`` beside ``{name}.tif|png``
    (``prediction_confidence.tif`` beside a tile's ``prediction.png`` and ``.tif``)."""
    return Path(map_path).with_name(f"{Path(map_path).stem}_confidence{GEOTIFF}")


def probabilities_path(map_path) -> Path:
    """A map's per-class probabilities (``predict.probabilities``): ``{name}_probabilities.tif``."""
    return Path(map_path).with_name(f"{Path(map_path).stem}_probabilities{GEOTIFF}")


def masked_path(map_path) -> Path:
    """A map's masked copy (``predict.confidence_threshold``): ``{name}_masked.tif|png``, the
    map's own type."""
    path = Path(map_path)
    return path.with_name(f"{path.stem}_masked{path.suffix}")


def vectors_path(map_path) -> Path:
    """Where a map's polygons go (``predict.vectors``): ``{map}.gpkg`` beside it."""
    return Path(map_path).with_suffix(".gpkg")


def style_path(map_path) -> Path:
    """Where a GeoTIFF map's QGIS style goes: ``{map}.qml`` beside it (``prediction.qml``
    beside ``prediction.tif``), which QGIS applies when the layer is added."""
    return Path(map_path).with_suffix(".qml")


MAP_FAMILY = ("{name}.tif", "{name}.png", "{name}_preview.png", "{name}.qml", "{name}.gpkg",
              "{name}_confidence.tif", "{name}_confidence.qml", "{name}_probabilities.tif", "{name}_masked.tif",
              "{name}_masked.png")
"""Every file that belongs to the map of the image named ``name`` (`map_companions`)."""


def map_companions(out_dir, name: str) -> list[Path]:
    """Every file in ``out_dir`` that belongs to the map of the image named ``name``: the map
    (GeoTIFF or PNG), its preview, QGIS style, polygons and confidence rasters. A map written
    again must leave none of them stale."""
    return [Path(out_dir) / pattern.format(name=name) for pattern in MAP_FAMILY]
