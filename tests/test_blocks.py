"""A map made as many block jobs (predict.block_size) equals the map of one job, pixel for pixel."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aerialseg import blocks, host_mosaic, mosaic
from aerialseg import config as cfg
from aerialseg.blocks import BlockGrid, Rect, Region
from aerialseg.class_ids import IGNORE_INDEX
from aerialseg.host_mosaic import Tiling
from aerialseg.config import layout
from aerialseg.errors import InputError
from aerialseg.io.read import open_image
from aerialseg.io.spec import DataSpec
from aerialseg.jobs import blocks as block_jobs
from aerialseg.jobs import prediction
from aerialseg.patches import window_starts
from tests.test_pipeline import COLORS, UTM_40N, _untrained_checkpoint, write_geotiff

K = 3


def test_blocks_tile_the_image_from_its_corner_and_the_last_ones_are_cut():
    grid = BlockGrid(100, 70, 32)
    assert grid.shape == (4, 3)
    assert grid.block(0, 0) == Rect(0, 0, 32, 32)
    assert grid.block(3, 2) == Rect(96, 64, 100, 70)
    assert len(grid.index()) == 12
    with pytest.raises(ValueError, match="outside the grid"):
        grid.block(4, 0)


@pytest.mark.parametrize("length, size, stride", [(100, 24, 8), (100, 24, 24), (97, 32, 12), (64, 32, 16), (33, 32, 5)])
def test_a_block_s_region_holds_exactly_the_windows_that_touch_it_at_their_places(length, size, stride):
    starts = window_starts(length, size, stride)
    for low in range(0, length, 16):
        block = Rect(low, 0, min(low + 16, length), length)
        area = blocks.region(block, (length, length), size, stride)
        touching = starts[(starts < block.bottom) & (starts + size > block.top)]
        assert (area.top, area.bottom) == (touching[0], touching[-1] + size)
        np.testing.assert_array_equal(window_starts(area.height, size, stride) + area.top, touching)
        # every window that covers a pixel of the block lies inside the region
        for pixel in range(block.top, block.bottom):
            covering = starts[(starts <= pixel) & (starts + size > pixel)]
            assert covering.min() >= area.top and covering.max() + size <= area.bottom


def collared_image(tmp_path, height=100, width=90, seed=3):
    """A GeoTIFF of random pixels with a no-data collar (nodata 0) and a no-data hole."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(1, 256, (height, width, 3), dtype=np.uint8)
    pixels[:, :13] = 0  # a collar on the left
    pixels[:20, :] = 0  # and along the top
    pixels[60:75, 40:70] = 0
    path = tmp_path / "collared.tif"
    from rasterio.transform import Affine

    write_geotiff(path, pixels, UTM_40N, Affine(0.5, 0, 305000, 0, -0.5, 2790000))
    import rasterio

    with rasterio.open(path, "r+") as dataset:
        dataset.nodata = 0
    return path


def host_predictor(windows: np.ndarray) -> np.ndarray:
    """Scores that depend on each pixel and on its whole window (so the halo matters)."""
    x = windows.astype(np.float32) / 255
    context = x.mean(axis=(1, 2, 3))[:, None, None, None]
    scores = np.stack([x[..., 0] - x[..., 1], x[..., 2] * 0.7, x[..., 1] * 0.3 + 0.2], axis=1)
    return scores + context * np.array([1.0, -0.5, 0.25], np.float32)[None, :, None, None]


def torch_predictor(batch: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(host_predictor(batch.permute(0, 2, 3, 1).cpu().numpy()))


def scores_of(strips, shape) -> tuple[np.ndarray, np.ndarray]:
    """Blended scores (K, H, W) and valid pixels of a mosaic's strips."""
    scores, valid = np.full((K, *shape), np.nan, np.float32), np.zeros(shape, bool)
    for top, block, ok in strips:
        block = block.cpu().numpy() if isinstance(block, torch.Tensor) else block
        scores[:, top : top + block.shape[1]] = block
        valid[top : top + block.shape[1]] = ok
    return scores, valid


MOSAICS = {
    "host": lambda image, blend: host_mosaic.iter_strips(host_predictor, image, K, Tiling(24, 10, blend=blend)),
    "torch": lambda image, blend: mosaic.iter_strips(torch_predictor, image, K, Tiling(24, 10, blend=blend)),
}


@pytest.mark.parametrize("which", MOSAICS)
@pytest.mark.parametrize("blend", ["mean", "gaussian"])
def test_blocks_of_a_mosaic_blend_exactly_the_scores_of_the_whole_image(tmp_path, which, blend):
    """100 x 90 px, 24 px windows every 10 px, 32 px blocks: no size divides another; the
    collar's windows are skipped alike. Scores equal bit for bit, so ids and confidence too."""
    spec = DataSpec.for_images({"data": {"bands": [0, 1, 2], "value_range": None, "nodata": None}})
    with open_image(collared_image(tmp_path), spec, 0) as image:
        whole, valid = scores_of(MOSAICS[which](image, blend), image.shape)
        grid = BlockGrid(*image.shape, 32)
        assembled = np.full_like(whole, -1)
        for index in grid.index():
            block = grid.block(*index)
            area = Region(image, blocks.region(block, image.shape, 24, 10))
            scores, _ = scores_of(MOSAICS[which](area, blend), area.shape)
            r = area.rect
            assembled[:, block.top : block.bottom, block.left : block.right] = scores[
                :, block.top - r.top : block.bottom - r.top, block.left - r.left : block.right - r.left]
    assert not valid.all() and valid.any()
    np.testing.assert_array_equal(assembled[:, valid], whole[:, valid])  # bit for bit, where there is data


@pytest.fixture
def map_config(default_config, tmp_path):
    default_config["data"]["classes"] = [{"name": n, "color": c} for n, c in zip(["a", "b", "c"], COLORS)]
    default_config["experiment"]["patch_sizes"] = [32]
    default_config["predict"].update({"stride": 12, "block_size": 48})
    default_config["train"]["threads"] = 1
    config = cfg.validate(default_config, producible=layout.demo_files())
    _untrained_checkpoint(tmp_path / "model.pt")
    from aerialseg import export

    # exported once, beside model.pt, where every job's ONNX Runtime finds it (backends.onnx_bytes)
    (tmp_path / "model.onnx").write_bytes(export.to_bytes(tmp_path / "model.pt", config["predict"]))
    return config


def map_in_blocks(config, tmp_path, image, out):
    """The rules' block jobs, called in turn: the grid, each block with data, the gather."""
    settings = cfg.with_run_options(cfg.job_settings(config, "map"), config, "map")
    grid_path = out / "blocks/grid.json"
    block_jobs.block_grid(config["predict"]["block_size"], tmp_path / "model.pt", image, grid_path)
    paths = []
    for index in json.loads(grid_path.read_text())["blocks"]:
        paths.append(out / f"blocks/{index[0]}_{index[1]}.npz")
        files = block_jobs.BlockFiles(image, grid_path, tuple(index), paths[-1])
        block_jobs.map_block(settings, tmp_path / "model.pt", files)
    block_jobs.gather_blocks(grid_path, paths, prediction.MapFiles(
        image, out / "map.tif", out / "map_preview.png", style=out / "map.qml", confidence=out / "map_confidence.tif"))
    return json.loads(grid_path.read_text())


def read_map(path):
    import rasterio

    with rasterio.open(path) as dataset:
        return (dataset.read(1), dataset.nodata, dataset.colormap(1), dataset.tags(1), dataset.crs, dataset.transform,
                dataset.overviews(1), dataset.profile["blockxsize"])


@pytest.mark.parametrize("blend, backend", [("mean", "onnxruntime"), ("gaussian", "onnxruntime"), ("gaussian", "torch")])
def test_a_map_gathered_from_block_jobs_is_the_map_of_one_job(map_config, tmp_path, blend, backend):
    """A 150 x 130 px GeoTIFF with a no-data collar, 32 px windows every 12 px, 48 px blocks:
    the gathered map is the one-job map, pixel for pixel, with the same georeference, legend,
    nodata and tiling, and the same preview; a block that is all no-data gets no job."""
    from PIL import Image

    map_config["predict"].update({"blend": blend, "backend": backend})
    image = collared_image(tmp_path, 150, 130, seed=4)
    import rasterio

    with rasterio.open(image, "r+") as dataset:  # the first row of blocks all no-data
        dataset.write(np.zeros((3, 48, 130), np.uint8), window=rasterio.windows.Window(0, 0, 130, 48))
    settings = cfg.with_run_options(cfg.job_settings(map_config, "map"), map_config, "map")
    one = prediction.MapFiles(image, tmp_path / "one/map.tif", tmp_path / "one/map_preview.png",
                              style=tmp_path / "one/map.qml", confidence=tmp_path / "one/map_confidence.tif")
    prediction.map_images(settings, tmp_path / "model.pt", [one])
    grid = map_in_blocks(map_config, tmp_path, image, tmp_path / "blocks")
    assert (grid["height"], grid["width"]) == (150, 130) and len(grid["blocks"]) == 3 * 3  # 4 x 3 blocks, 3 empty
    whole, gathered = read_map(one.map), read_map(tmp_path / "blocks/map.tif")
    ids = whole[0]
    assert (ids == IGNORE_INDEX).any() and (ids < 3).any()
    np.testing.assert_array_equal(gathered[0], ids)
    assert gathered[1:] == whole[1:]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "blocks/map_preview.png")),
                                  np.asarray(Image.open(one.preview)))
    with rasterio.open(one.confidence) as a, rasterio.open(tmp_path / "blocks/map_confidence.tif") as b:
        whole_codes, gathered_codes = a.read(1), b.read(1)
        assert (a.nodata, a.scales, a.transform, a.crs) == (b.nodata, b.scales, b.transform, b.crs)
    assert (whole_codes[ids == IGNORE_INDEX] == 0).all() and (whole_codes[ids != IGNORE_INDEX] > 0).all()
    np.testing.assert_array_equal(gathered_codes, whole_codes)  # the same codes: the same blended scores
    assert (tmp_path / "blocks/map.qml").read_text() == Path(one.style).read_text()


def test_block_files_that_do_not_match_the_grid_are_refused(map_config, tmp_path):
    image = collared_image(tmp_path, 100, 90)
    out = tmp_path / "blocks"
    map_in_blocks(map_config, tmp_path, image, out)
    files = prediction.MapFiles(image, out / "again.tif", out / "again_preview.png")
    paths = sorted((out / "blocks").glob("*.npz"))
    with pytest.raises(InputError, match=r"missing \[\(0, 0\)\]"):
        block_jobs.gather_blocks(out / "blocks/grid.json", [p for p in paths if p.name != "0_0.npz"], files)
    with pytest.raises(InputError, match="a second file for its block"):
        block_jobs.gather_blocks(out / "blocks/grid.json", paths + paths[:1], files)
    assert not files.map.exists() and not files.preview.exists()


@pytest.mark.parametrize("block_size, message", [
    (40, "predict.block_size: 40 is not a multiple of 16"),
    (16, "predict.block_size: 16 px is smaller than the 32 px windows"),
])
def test_a_bad_block_size_is_refused_naming_the_key(default_config, block_size, message):
    default_config["experiment"]["patch_sizes"] = [16, 32]
    default_config["predict"]["block_size"] = block_size
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.validate(default_config, producible=layout.demo_files())


@pytest.mark.parametrize("key, value", [("probabilities", True), ("confidence_threshold", 0.5)])
def test_blocks_with_what_a_gather_cannot_write_yet_are_refused_naming_the_key(default_config, key, value):
    default_config["predict"].update({"block_size": 256, key: value})
    with pytest.raises(cfg.ConfigError, match=f"predict.{key}: not available for maps made as blocks"):
        cfg.validate(default_config, producible=layout.demo_files())


def write_vrt(path, tiles, width, height, crs, transform):
    """A GDAL VRT mosaic of 3-band tiles ((file, column offset, width) side by side), nodata 0."""
    sources = "".join(
        f'<SimpleSource><SourceFilename relativeToVRT="1">{name}</SourceFilename><SourceBand>{{band}}</SourceBand>'
        f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{height}"/><DstRect xOff="{left}" yOff="0" xSize="{w}" '
        f'ySize="{height}"/></SimpleSource>' for name, left, w in tiles)
    bands = "".join(f'<VRTRasterBand dataType="Byte" band="{b}"><NoDataValue>0</NoDataValue>'
                    f'{sources.format(band=b)}</VRTRasterBand>' for b in (1, 2, 3))
    geo = ", ".join(map(str, transform.to_gdal()))
    path.write_text(f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}"><SRS>{crs.to_wkt()}</SRS>'
                    f"<GeoTransform>{geo}</GeoTransform>{bands}</VRTDataset>")


def test_a_vrt_mosaic_of_tiles_maps_in_blocks_as_the_image_it_stands_for(map_config, tmp_path):
    """data.predict may name a GDAL VRT of many tiles: its blocks read across the tiles' seams,
    and the gathered map is the map of the same pixels as one GeoTIFF."""
    import rasterio
    from rasterio.windows import Window

    image = collared_image(tmp_path, 100, 130, seed=5)
    with rasterio.open(image) as whole:
        crs, transform = whole.crs, whole.transform
        for name, left, width in (("west.tif", 0, 70), ("east.tif", 70, 60)):
            window = Window(left, 0, width, 100)
            write_geotiff(tmp_path / name, np.moveaxis(whole.read(window=window), 0, -1), crs,
                          whole.window_transform(window))
    write_vrt(tmp_path / "region.vrt", [("west.tif", 0, 70), ("east.tif", 70, 60)], 130, 100, crs, transform)
    settings = cfg.with_run_options(cfg.job_settings(map_config, "map"), map_config, "map")
    one = prediction.MapFiles(image, tmp_path / "one/map.tif", tmp_path / "one/map_preview.png")
    prediction.map_images(settings, tmp_path / "model.pt", [one])
    map_in_blocks(map_config, tmp_path, tmp_path / "region.vrt", tmp_path / "vrt")
    whole, gathered = read_map(one.map), read_map(tmp_path / "vrt/map.tif")
    assert (whole[0] == IGNORE_INDEX).any()
    np.testing.assert_array_equal(gathered[0], whole[0])
    assert gathered[1:] == whole[1:]


@pytest.mark.parametrize("device, backend, gpus_seen, claimed", [
    ("cpu", "auto", 1, 0),           # the CPU: threads only, even where a GPU is
    ("auto", "onnxruntime", 1, 0),   # ONNX Runtime runs on the CPU
    ("cuda", "auto", 0, 1),          # asked for: one GPU, wherever Snakemake runs
    ("auto", "auto", 1, 1),          # auto: a GPU where this machine has one
    ("auto", "auto", 0, 0),
    ("auto", "torch", 0, 0),
])
def test_a_block_job_claims_a_gpu_only_where_it_predicts_on_one(device, backend, gpus_seen, claimed):
    config = {"predict": {"device": None, "backend": backend, "threads": None}, "train": {"device": device, "threads": 2}}
    assert cfg.block_gpus(config, gpus_seen) == claimed
