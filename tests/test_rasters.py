"""Rasters of any size: windowed reading with no-data, maps written band by band as COGs,
and maps as polygons."""

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine

from aerialseg.class_ids import IGNORE_INDEX
from aerialseg.io import read, write
from aerialseg.io.read import Georeference
from aerialseg.io.spec import DataSpec
from aerialseg.mosaic import Tiling, predict_ids, with_flips

UTM = "EPSG:32640"
TRANSFORM = Affine(0.5, 0, 305000, 0, -0.5, 2790000)
SPEC = DataSpec(colors=((0, 0, 255), (0, 255, 0), (255, 0, 0)))


def write_tif(path, array, **extra):
    """(H, W, C) -> a tiled GeoTIFF in UTM 40N."""
    profile = dict(driver="GTiff", height=array.shape[0], width=array.shape[1], count=array.shape[2],
                   dtype=str(array.dtype), crs=UTM, transform=TRANSFORM, tiled=True, blockxsize=64, blockysize=64)
    with rasterio.open(path, "w", **{**profile, **extra}) as dataset:
        dataset.write(np.moveaxis(array, -1, 0))
    return path


def conv_predictor(seed=0):
    """A cheap stand-in model: a 3x3 convolution from uint8 RGB to 3 classes."""
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    return lambda batch: conv(batch.float() / 255)


@pytest.mark.parametrize("height, width, size, stride, batch, blend, tta", [
    (200, 150, 32, 16, 3, "mean", False),      # one window row a band, odd sizes
    (201, 133, 32, 12, 40, "gaussian", False),  # several window rows a band
    (97, 301, 16, 16, 1000, "mean", True),     # the whole image one band, with flips
])
def test_a_map_read_window_by_window_equals_the_whole_image_map(tmp_path, height, width, size, stride, batch, blend, tta):
    array = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    predictor = conv_predictor()
    predictor = with_flips(predictor) if tta else predictor
    whole = predict_ids(predictor, array, 3, Tiling(size, stride, batch_size=batch, blend=blend))
    with read.open_image(write_tif(tmp_path / "image.tif", array), SPEC) as image:
        windowed = predict_ids(predictor, image, 3, Tiling(size, stride, batch_size=batch, blend=blend))
    np.testing.assert_array_equal(windowed, whole)


def _collar(height=160, width=192, margin=40):
    array = np.random.default_rng(1).integers(1, 256, (height, width, 3), dtype=np.uint8)
    valid = np.zeros((height, width), bool)
    valid[margin:-margin, margin:-margin] = True
    return array, valid


def test_no_data_comes_from_the_nodata_value_the_internal_mask_or_the_alpha_band(tmp_path):
    array, valid = _collar()
    collared = np.where(valid[:, :, None], array, 0).astype(np.uint8)
    by_value = write_tif(tmp_path / "value.tif", collared, nodata=0)
    by_mask = write_tif(tmp_path / "mask.tif", array)
    with rasterio.open(by_mask, "r+") as dataset:
        dataset.write_mask(valid.astype(np.uint8) * 255)
    by_alpha = write_tif(tmp_path / "alpha.tif", np.dstack([array, valid * 255]).astype(np.uint8), photometric="RGB",
                         alpha="YES")
    for path in (by_value, by_mask, by_alpha):
        assert read.has_nodata(path)
        np.testing.assert_array_equal(read.valid_mask(path, SPEC), valid, err_msg=path.name)
    plain = write_tif(tmp_path / "plain.tif", collared)
    assert not read.has_nodata(plain) and read.valid_mask(plain, SPEC) is None
    np.testing.assert_array_equal(read.valid_mask(plain, SPEC, nodata=0), valid)  # data.nodata supplies one
    floats = array.astype(np.float32)
    floats[~valid] = np.nan
    spec = DataSpec(colors=SPEC.colors, value_range=(0.0, 255.0))
    np.testing.assert_array_equal(read.valid_mask(write_tif(tmp_path / "nan.tif", floats), spec), valid)


def test_no_data_gets_the_nodata_id_and_windows_wholly_in_it_cost_nothing(tmp_path):
    array, valid = _collar(height=192, width=192, margin=64)
    calls = []
    conv = conv_predictor()

    def predictor(batch):
        calls.append(len(batch))
        return conv(batch)

    path = write_tif(tmp_path / "value.tif", np.where(valid[:, :, None], array, 0).astype(np.uint8), nodata=0)
    with read.open_image(path, SPEC) as image:
        ids = predict_ids(predictor, image, 3, Tiling(32, 32, batch_size=6))
    assert (ids[~valid] == IGNORE_INDEX).all() and (ids[valid] < 3).all()
    assert sum(calls) == 2 * 2  # of the 6 x 6 windows only the 4 that touch the valid 64 px square were predicted
    whole = predict_ids(conv, array, 3, Tiling(32, 32, batch_size=6))
    np.testing.assert_array_equal(ids[valid], whole[valid])  # a valid pixel's windows are all predicted


def _written_map(tmp_path, ids, **kwargs):
    legend = write.MapLegend([(0, 0, 255), (0, 255, 0), (255, 0, 0), (9, 9, 9), (255, 255, 255)],
                             ["a", "b", "c", "d", "e"], **kwargs)
    writer = write.MapWriter(tmp_path / "map.tif", *ids.shape, Georeference(rasterio.crs.CRS.from_string(UTM), TRANSFORM),
                             legend)
    for top in range(0, ids.shape[0], 100):  # rows as a mosaic finishes them
        writer.write(top, ids[top : top + 100])
    assert not (tmp_path / "map.tif").exists()  # nothing appears before the map is finished
    writer.close()
    return tmp_path / "map.tif"


def test_a_map_is_a_cloud_optimised_geotiff_with_nearest_overviews(tmp_path):
    ids = np.where((np.indices((1000, 900)).sum(0) // 7) % 2 == 0, 0, 4).astype(np.uint8)  # a fine checkerboard of 0 and 4
    ids[:50] = IGNORE_INDEX
    with rasterio.open(_written_map(tmp_path, ids)) as dataset:
        assert dataset.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert (dataset.crs.to_string(), dataset.transform, dataset.shape) == (UTM, TRANSFORM, (1000, 900))
        assert dataset.block_shapes == [(256, 256)] and dataset.profile["compress"] == "deflate"
        assert dataset.nodata == IGNORE_INDEX and dataset.colormap(1)[4][:3] == (255, 255, 255)
        assert dataset.tags(1)["CLASSES"] == "0=a;1=b;2=c;3=d;4=e"
        np.testing.assert_array_equal(dataset.read(1), ids)
        assert dataset.overviews(1) == [2, 4]
        for factor in dataset.overviews(1):
            overview = dataset.read(1, out_shape=(1000 // factor, 900 // factor))
            assert set(np.unique(overview)) <= {0, 4, IGNORE_INDEX}  # nearest: never an average of ids
    assert [p.name for p in tmp_path.iterdir()] == ["map.tif"]  # the rows file is gone


def test_polygons_of_a_map_rasterise_back_to_the_sieved_map(tmp_path):
    shapely = pytest.importorskip("shapely")
    from pyogrio.raw import read
    from rasterio import features

    ids = np.zeros((120, 150), np.uint8)
    ids[10:70, 20:90] = 1
    ids[30:40, 40:50] = 2  # a hole in class 1, 100 px: kept
    ids[100:103, 5:8] = 2  # 9 px: sieved into class 0
    ids[:, 140:] = IGNORE_INDEX
    path = _written_map(tmp_path, ids)
    count = write.write_polygons(path, tmp_path / "map.gpkg", ["a", "b", "c", "d", "e"], min_area=20)
    meta, _, geometry, (classes, class_ids) = read(tmp_path / "map.gpkg")
    assert count == len(geometry) == 3 and meta["crs"] == UTM
    assert sorted(zip(classes, class_ids)) == [("a", 0), ("b", 1), ("c", 2)]
    shapes = [(shapely.from_wkb(g), int(v)) for g, v in zip(geometry, class_ids)]
    back = features.rasterize(shapes, out_shape=ids.shape, transform=TRANSFORM, fill=IGNORE_INDEX)
    expected = ids.copy()
    expected[100:103, 5:8] = 0
    np.testing.assert_array_equal(back, expected)


def test_a_preview_gathered_band_by_band_is_the_map_at_a_stride(tmp_path):
    from PIL import Image as PILImage

    ids = np.random.default_rng(2).integers(0, 3, (1000, 700)).astype(np.uint8)
    colors = [(0, 0, 255), (0, 255, 0), (255, 0, 0)]
    preview = write.Preview(*ids.shape, colors, max_side=256)  # a stride of 4
    for top in (0, 37, 101, 500, 999):  # bands of uneven heights, as a mosaic finishes them
        end = {0: 37, 37: 101, 101: 500, 500: 999, 999: 1000}[top]
        preview.write(top, ids[top:end])
    preview.save(tmp_path / "preview.png")
    shown = np.asarray(PILImage.open(tmp_path / "preview.png"))
    np.testing.assert_array_equal(shown, np.asarray(colors, np.uint8)[ids[::4, ::4]])
