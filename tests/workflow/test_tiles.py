"""Many tiles in, any image out: a tiny study on two training tiles and two test tiles, with an
unlabelled GeoTIFF to map, through Snakemake; then the console command on the same image."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from aerialseg import demo
from aerialseg.io.write import write_png
from tests.workflow.test_workflow import PALETTE, colors_in, snakemake

pytestmark = pytest.mark.workflow

TRAIN, TEST = ("north", "south"), ("east", "west")
GEOREFERENCED = "east"  # given as a GeoTIFF; the others as PNG


def _geotiff(path, pixels):
    import rasterio
    from rasterio.transform import Affine

    with rasterio.open(path, "w", driver="GTiff", height=pixels.shape[0], width=pixels.shape[1], count=3,
                       dtype="uint8", crs="EPSG:32640", transform=Affine(0.5, 0, 305000, 0, -0.5, 2790000)) as dataset:
        dataset.write(np.moveaxis(pixels, -1, 0))


@pytest.fixture(scope="module")
def tiled_run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("tiles")
    for i, name in enumerate(TRAIN + TEST):
        pixels, label = demo.render_scene(128 + 16 * i, seed=i)
        write_png(work / f"{name}.png", pixels)
        write_png(work / f"{name}_label.png", label)
    pixels, _ = demo.render_scene(160, seed=9)
    _geotiff(work / "new_area.tif", pixels)
    _geotiff(work / f"{GEOREFERENCED}.tif", np.asarray(Image.open(work / f"{GEOREFERENCED}.png")))  # a GeoTIFF tile
    pairs = {split: [{"image": f"{n}.tif" if n == GEOREFERENCED else f"{n}.png", "label": f"{n}_label.png"}
                     for n in names] for split, names in (("train", TRAIN), ("test", TEST))}
    (work / "tiles.yaml").write_text(yaml.safe_dump({
        "data": {**pairs, "predict": ["new_*.tif"]},
        "experiment": {"patch_sizes": [32], "inits": ["scratch"], "stride": 32},
        "train": {"epochs": 1, "batch_size": 8, "threads": 2}, "predict": {"stride": 16, "vectors": True, "min_area": 4},
    }))
    snakemake("--configfile", work / "tiles.yaml", "--cores", "2", workdir=work)
    return work


def test_every_tile_has_its_folder_and_the_split_its_pooled_scores(tiled_run):
    case = tiled_run / "results/cases/scratch_p32"
    for split, names in (("train", TRAIN), ("test", TEST)):
        matrices = []
        for name in names:
            folder = case / split / name
            i = (TRAIN + TEST).index(name)
            ids = np.asarray(Image.open(folder / "prediction.png"))
            assert ids.shape == (128 + 16 * i,) * 2 and ids.max() < len(PALETTE)  # this tile's own size
            np.testing.assert_array_equal(np.asarray(Image.open(folder / "prediction_color.png")), PALETTE[ids])
            matrices.append(pd.read_csv(folder / "confusion.csv", index_col=0))
            metrics = pd.read_csv(folder / "metrics.csv")
            assert metrics.support.tolist() == matrices[-1].sum(axis=1).tolist()
            label = np.asarray(Image.open(tiled_run / f"{name}_label.png"))
            assert matrices[-1].to_numpy().sum() == ids.size - np.all(label == (255, 0, 0), axis=2).sum()
            assert set(map(tuple, PALETTE[np.unique(ids)])) <= colors_in(folder / "mosaic.png")
        pooled = pd.read_csv(case / split / "confusion.csv", index_col=0)
        pd.testing.assert_frame_equal(pooled, matrices[0] + matrices[1])  # one summed confusion matrix
        assert not (case / split / "prediction.png").exists()
    tiles = pd.read_csv(tiled_run / "results/summary/tiles.csv")
    assert sorted(tiles.tile) == sorted(TRAIN + TEST) and set(tiles.image) == {"train", "test"}
    evaluation = pd.read_csv(tiled_run / "results/summary/evaluation.csv")
    assert len(evaluation) == 2  # one case, two splits: the tables stay those of the study

    index = pd.read_csv(tiled_run / "results/patches/p32.csv")
    assert list(index.columns) == ["row", "col", "split", "tile"] and set(index.tile) == set(TRAIN)
    stats = pd.read_csv(tiled_run / "results/data/class_stats.csv").set_index(["image", "class"]).pixels
    per_tile = pd.read_csv(tiled_run / "results/data/class_stats_tiles.csv")
    summed = per_tile[per_tile.image == "train"].groupby("class", sort=False).pixels.sum()
    assert summed.to_dict() == stats["train"].to_dict()


def test_a_georeferenced_tile_gets_its_prediction_as_a_geotiff_from_its_png(tiled_run):
    import json

    import rasterio

    recorded = json.loads((tiled_run / "results/data/preflight.json").read_text())
    assert recorded == {"georeferenced": [f"{GEOREFERENCED}.tif", "new_area.tif"]}  # the pre-flight job's record
    test = tiled_run / "results/cases/scratch_p32/test"
    with rasterio.open(test / GEOREFERENCED / "prediction.tif") as predicted:
        assert predicted.crs == rasterio.crs.CRS.from_epsg(32640) and predicted.transform.c == 305000
        np.testing.assert_array_equal(predicted.read(1), np.asarray(Image.open(test / GEOREFERENCED / "prediction.png")))
    assert 'label="Buildings"' in (test / GEOREFERENCED / "prediction.qml").read_text()
    assert not any((test / name / "prediction.tif").exists() for name in TEST if name != GEOREFERENCED)
    assert not (tiled_run / "results/cases/scratch_p32/train/north/prediction.tif").exists()


def test_the_best_case_maps_the_unlabelled_image_in_its_crs(tiled_run):
    import rasterio

    assert yaml.safe_load((tiled_run / "results/maps/best_case.yaml").read_text())["case"] == "scratch_p32"
    with rasterio.open(tiled_run / "new_area.tif") as image, \
            rasterio.open(tiled_run / "results/maps/scratch_p32/new_area.tif") as mapped:
        assert (mapped.crs, mapped.transform, mapped.shape) == (image.crs, image.transform, image.shape)
        assert mapped.count == 1 and mapped.read(1).max() < 5 and mapped.colormap(1)[0][:3] == (0, 0, 255)
        preview = np.asarray(Image.open(tiled_run / "results/maps/scratch_p32/new_area_preview.png"))
        np.testing.assert_array_equal(preview, PALETTE[mapped.read(1)])  # the map in the classes' colours
    import pyogrio

    polygons = pyogrio.read_info(tiled_run / "results/maps/scratch_p32/new_area.gpkg")
    assert polygons["crs"] == "EPSG:32640" and polygons["features"] > 0 and list(polygons["fields"]) == ["class", "class_id", "confidence"]


def test_the_console_command_writes_what_the_rule_wrote_byte_for_byte(tiled_run):
    out = tiled_run / "by_hand"
    command = [str(Path(sys.executable).parent / "aerialseg"), "predict", "results/cases/scratch_p32/model.pt",
               "new_area.tif", "-o", str(out), "--stride", "16", "--threads", "2", "--vectors", "--min-area", "4"]
    result = subprocess.run(command, cwd=tiled_run, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "mosaic" in result.stderr  # the progress bar
    for name in ("new_area.tif", "new_area_preview.png"):
        assert (out / name).read_bytes() == (tiled_run / "results/maps/scratch_p32" / name).read_bytes(), name
    from pyogrio.raw import read  # a GeoPackage records when it was written: its features are compared

    by_rule, by_hand = (read(folder / "new_area.gpkg") for folder in (tiled_run / "results/maps/scratch_p32", out))
    assert list(by_rule[2]) == list(by_hand[2]) and all(list(a) == list(b) for a, b in zip(by_rule[3], by_hand[3]))


def test_block_jobs_remake_the_map_byte_for_byte_and_a_lost_block_reruns_alone(tiled_run):
    """predict.block_size 64: the 160 px map as 9 block jobs and a gather, byte for byte the map
    of one job, and nothing but the map's jobs rerun; a block lost before its gather (a killed
    job) is the only block made again."""
    import re
    from collections import Counter

    from tests.workflow.test_workflow import job_counts

    maps = tiled_run / "results/maps/scratch_p32"
    one_job = {name: (maps / name).read_bytes() for name in ("new_area.tif", "new_area_preview.png")}
    # on the CPU the one-job map read the case's model.onnx (rule export_onnx) instead of exporting model.pt
    map_log = (tiled_run / "results/logs/map/scratch_p32/new_area.log").read_text()
    assert "ONNX graph from results/cases/scratch_p32/model.onnx" in map_log
    config = yaml.safe_load((tiled_run / "tiles.yaml").read_text())
    config["predict"]["block_size"] = 64
    (tiled_run / "blocks.yaml").write_text(yaml.safe_dump(config))
    args = ("--configfile", tiled_run / "blocks.yaml", "--notemp")
    result = snakemake(*args, "--cores", "2", workdir=tiled_run)
    ran = Counter(re.findall(r"^local(?:rule|checkpoint) (\w+):", result.stdout + result.stderr, re.M))
    assert ran == {"map_grid": 1, "map_block": 9, "map_gather": 1, "polygons": 1, "all": 1}  # model.onnx: made already
    assert {name: (maps / name).read_bytes() for name in one_job} == one_job
    (maps / "blocks/new_area/1_1.npz").unlink()
    (maps / "new_area.tif").unlink()
    counts = job_counts(snakemake(*args, "-n", workdir=tiled_run).stdout)
    assert counts == {"map_block": 1, "map_gather": 1, "polygons": 1, "all": 1, "total": 4}
