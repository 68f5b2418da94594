"""Confidence rasters: the softmax of the blended scores at the chosen class, from both
mosaics, written beside every map (uint8, band scale 1/255, nodata 0, the map's georeference);
per-class probabilities; the masked map; the polygons' mean confidence; the command's options."""

import math

import numpy as np
import pytest
import torch

from aerialseg import config as cfg
from aerialseg import host_mosaic, mosaic
from aerialseg.calibration import to_codes
from aerialseg.class_ids import IGNORE_INDEX
from aerialseg.host_mosaic import Tiling
from aerialseg.io.write import write_png
from aerialseg.jobs import prediction

COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
UTM_40N = "EPSG:32640"


def _host_blocks(predict, image, k, size, stride, **kwargs):
    return list(host_mosaic.iter_blocks(predict, image, k, Tiling(size, stride), **kwargs))


def _torch_blocks(predict, image, k, size, stride, **kwargs):
    def on_device(batch):  # (B, C, s, s) uint8 tensor -> the same scores as the host's predictor
        return torch.from_numpy(predict(batch.permute(0, 2, 3, 1).numpy()))

    return list(mosaic.iter_blocks(on_device, image, k, Tiling(size, stride), **kwargs))


MOSAICS = {"host": _host_blocks, "torch": _torch_blocks}


def _gathered(blocks, part):
    return np.concatenate([part(block) for block in blocks], axis=-2)


@pytest.mark.parametrize("which", MOSAICS)
@pytest.mark.parametrize("k", [2, 3, 6])
def test_a_constant_logit_model_has_a_confidence_of_one_over_k(which, k):
    image = np.random.default_rng(0).integers(0, 256, (80, 72, 3), dtype=np.uint8)

    def constant(windows):
        return np.full((len(windows), k, windows.shape[1], windows.shape[2]), 1.7, np.float32)

    blocks = MOSAICS[which](constant, image, k, 32, 16)
    confidence = _gathered(blocks, lambda b: b.confidence)
    assert confidence.shape == (80, 72) and confidence.dtype == np.uint8
    assert (confidence == round(255 / k)).all()
    probabilities = _gathered(blocks, lambda b: b.probabilities())
    assert probabilities.shape == (k, 80, 72) and (probabilities == round(255 / k)).all()


def _two_windows(windows):
    """Logits of a window by where it lies (the image's value is its column): (2, 0, 0) for the
    window at column 0, (0, 1, 0) for the one at column 16."""
    out = np.zeros((len(windows), 3, windows.shape[1], windows.shape[2]), np.float32)
    left = windows[:, 0, 0, 0] == 0
    out[left, 0] = 2.0
    out[~left, 1] = 1.0
    return out


def _log_softmax(scores):
    return scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("which", MOSAICS)
@pytest.mark.parametrize("scores", ["logits", "log-probabilities"])
def test_two_blended_windows_give_the_hand_computed_confidence(which, scores):
    """Windows of 32 px every 16 px on a 32 x 48 image: columns 16-31 are covered by both, so
    their blended logits are the mean (1, 0.5, 0), whose softmax at class 0 is
    e / (e + e^0.5 + 1) = 0.5065: code 129. Columns 0-15: softmax (2, 0, 0) at 0, e^2 / (e^2 + 2)
    = 0.7870, code 201; columns 32-47: e / (e + 2) = 0.5761, code 147. Log-probabilities (what
    the host mosaic blends for ONNX Runtime) give the same: a shift per pixel changes no softmax."""
    image = np.repeat(np.repeat(np.arange(48, dtype=np.uint8)[None, :, None], 32, axis=0), 3, axis=2)
    predict = _two_windows if scores == "logits" else (lambda w: _log_softmax(_two_windows(w)))
    blocks = MOSAICS[which](predict, image, 3, 32, 16)
    confidence, ids = _gathered(blocks, lambda b: b.confidence), _gathered(blocks, lambda b: b.ids)
    e = math.e
    expected = [e**2 / (e**2 + 2), e / (e + e**0.5 + 1), e / (e + 2)]
    assert round(255 * expected[1]) == 129
    for columns, value, label in zip((slice(0, 16), slice(16, 32), slice(32, 48)), expected, (0, 0, 1)):
        assert (confidence[:, columns] == round(255 * value)).all()
        assert (ids[:, columns] == label).all()


def test_scores_become_codes_of_one_255th_with_zero_for_nodata():
    scores = np.array([[0.0, 0.001, 0.5, 1.0], [np.nan, 0.9, 0.2, 0.6]], np.float32)
    valid = np.array([[True, True, True, True], [True, True, False, True]])
    np.testing.assert_array_equal(to_codes(scores, valid), [[1, 1, 128, 255], [0, 230, 0, 153]])
    assert to_codes(np.full((2, 1, 3), 0.5), np.array([[True, False, True]]))[:, 0].tolist() == [[128, 0, 128]] * 2


def _checkpoint(path, nodata=None):
    from aerialseg.model import ModelSpec, build, save_checkpoint

    torch.manual_seed(0)
    spec = ModelSpec(3, "scratch", decoder_channels=32)
    save_checkpoint(path, build(spec), spec, case="scratch_p32", patch_size=32, data={
        "classes": [{"name": n, "color": c} for n, c in zip(["tree", "road", "roof"], COLORS)],
        "label_format": "color", "ignore_colors": [], "ignore_values": [], "bands": [0, 1, 2], "value_range": None,
        "nodata": nodata, "image_bands": 3})


def _settings(**predict):
    return cfg.sections(predict={"stride": 16, "backend": "torch", "fold_batchnorm": False, **predict},
                        train={"device": "cpu", "threads": 1})


@pytest.fixture
def collared_geotiff(tmp_path):
    """A GeoTIFF (UTM 40N, 0.3 x 0.4 m pixels) whose left 20 columns are no-data (0 in every band)."""
    import rasterio
    from rasterio.transform import Affine

    transform = Affine(0.3, 0.0, 305000.5, 0.0, -0.4, 2790000.25)
    image = np.random.default_rng(1).integers(1, 256, (70, 90, 3), dtype=np.uint8)
    image[:, :20] = 0
    with rasterio.open(tmp_path / "area.tif", "w", driver="GTiff", height=70, width=90, count=3, dtype="uint8",
                       crs=UTM_40N, transform=transform) as dataset:
        dataset.write(np.moveaxis(image, -1, 0))
    _checkpoint(tmp_path / "model.pt", nodata=0)
    return tmp_path / "area.tif", tmp_path / "model.pt"


def test_the_confidence_raster_has_the_maps_georeference_and_nodata_and_a_band_scale(collared_geotiff, tmp_path):
    import rasterio

    image, model = collared_geotiff
    files = prediction.MapFiles(image, tmp_path / "out/area.tif", tmp_path / "out/area_preview.png",
                                confidence=tmp_path / "out/area_confidence.tif",
                                confidence_style=tmp_path / "out/area_confidence.qml",
                                probabilities=tmp_path / "out/area_probabilities.tif",
                                masked=tmp_path / "out/area_masked.tif")
    prediction.map_images(_settings(confidence_threshold=0.4), model, [files])
    import xml.etree.ElementTree as ET

    renderer = ET.parse(files.confidence_style).getroot().find("pipe/rasterrenderer")  # a ramp over 0-1, as QGIS
    assert renderer.get("type") == "singlebandpseudocolor"  # applies the band scale (checked with QGIS 3.22)
    ramp = [(float(i.get("value")), i.get("color")) for i in renderer.iter("item")]
    assert ramp[0] == (0.0, "#d7191c") and ramp[-1] == (1.0, "#1a9641") and ramp == sorted(ramp)
    with rasterio.open(files.map) as map_, rasterio.open(files.confidence) as conf:
        ids = map_.read(1)
        assert (conf.crs, conf.transform, conf.shape) == (map_.crs, map_.transform, map_.shape)
        assert conf.count == 1 and conf.dtypes == ("uint8",) and conf.nodata == 0
        assert conf.scales == (1 / 255,) and conf.offsets == (0.0,) and conf.descriptions == ("confidence",)
        assert conf.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        codes = conf.read(1)
        assert ((codes == 0) == (ids == map_.nodata)).all() and (ids[:, :20] == map_.nodata).all()
        assert codes[:, 20:].min() >= round(255 / 3)  # never under 1/K, the confidence of a tie
        scaled = conf.read(1, masked=True).astype(np.float64) * conf.scales[0]
        assert 1 / 3 - 1 / 510 <= scaled.min() and scaled.max() <= 1
    with rasterio.open(files.probabilities) as probs, rasterio.open(files.masked) as masked:
        assert probs.count == 3 and probs.descriptions == ("tree", "road", "roof") and probs.nodata == 0
        assert probs.crs == map_.crs and probs.transform == map_.transform and probs.scales == (1 / 255,) * 3
        p = probs.read().astype(int)
        assert ((p.max(axis=0) - codes).__abs__() <= 1).all()  # the chosen class's probability is the confidence
        assert (np.abs(p[:, :, 20:].sum(axis=0) - 255) <= 3).all()
        kept = masked.read(1)
        assert masked.nodata == map_.nodata
        doubtful = (codes / 255 < 0.4) & (codes > 0)
        assert ((kept == map_.nodata) == (doubtful | (ids == map_.nodata))).all()
        assert (kept[~doubtful] == ids[~doubtful]).all()


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # read back: a plain TIFF
def test_a_test_tile_gets_prediction_confidence_tif_a_plain_tiff_without_georeference(tmp_path):
    import rasterio

    write_png(tmp_path / "tile.png", np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    _checkpoint(tmp_path / "model.pt")
    tile = prediction.TileFiles(tmp_path / "tile.png", tmp_path / "prediction.png", tmp_path / "prediction_color.png",
                                confidence=tmp_path / "prediction_confidence.tif")
    prediction.predict_images(_settings(), tmp_path / "model.pt", [tile])
    with rasterio.open(tile.confidence) as conf:
        assert conf.crs is None and conf.shape == (48, 64) and conf.scales == (1 / 255,)
        assert conf.read(1).min() >= round(255 / 3)


def test_a_failing_map_leaves_no_confidence_raster_behind(collared_geotiff, tmp_path, monkeypatch):
    from aerialseg.inference import LoadedModel

    image, model = collared_geotiff

    def broken(self, image):
        yield from ()
        raise OSError("disk full")

    monkeypatch.setattr(LoadedModel, "iter_blocks", broken)
    files = prediction.MapFiles(image, tmp_path / "out/area.tif", tmp_path / "out/area_preview.png",
                                confidence=tmp_path / "out/area_confidence.tif")
    with pytest.raises(OSError, match="disk full"):
        prediction.map_images(_settings(), model, [files])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_a_raster_that_cannot_be_made_leaves_none_of_the_others_begun(collared_geotiff, tmp_path, monkeypatch):
    from aerialseg.inference import LoadedModel

    image, model = collared_geotiff

    def refused(self, path, image, where):
        raise OSError("permission denied")

    monkeypatch.setattr(LoadedModel, "confidence_writer", refused)  # the map's writer is made before it
    files = prediction.MapFiles(image, tmp_path / "out/area.tif", tmp_path / "out/area_preview.png",
                                confidence=tmp_path / "out/area_confidence.tif")
    with pytest.raises(OSError, match="permission denied"):
        prediction.map_images(_settings(), model, [files])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_polygons_carry_the_mean_confidence_of_their_pixels(tmp_path):
    import rasterio
    from pyogrio.raw import read
    from rasterio.transform import Affine

    from aerialseg.io.write import write_polygons

    ids = np.full((4, 6), 255, np.uint8)
    ids[:, :3], ids[:, 3:5] = 0, 1  # a region of class 0 (12 px) and one of class 1 (8 px); column 5 no-data
    codes = np.zeros((4, 6), np.uint8)
    codes[:, :3], codes[:2, 3:5], codes[2:, 3:5] = 204, 255, 153
    profile = {"driver": "GTiff", "height": 4, "width": 6, "count": 1, "dtype": "uint8", "crs": UTM_40N,
               "transform": Affine(1, 0, 0, 0, -1, 4)}
    with rasterio.open(tmp_path / "m.tif", "w", nodata=255, **profile) as dataset:
        dataset.write(ids[None])
    with rasterio.open(tmp_path / "c.tif", "w", nodata=0, **profile) as dataset:
        dataset.write(codes[None])
    assert write_polygons(tmp_path / "m.tif", tmp_path / "m.gpkg", ["a", "b"], confidence_path=tmp_path / "c.tif") == 2
    meta, _, _, (names, values, confidence) = read(tmp_path / "m.gpkg", layer="map")
    assert list(meta["fields"]) == ["class", "class_id", "confidence"]
    found = {name: (int(v), float(c)) for name, v, c in zip(names, values, confidence)}
    assert found == {"a": (0, pytest.approx(0.8)), "b": (1, pytest.approx(0.8))}


def test_the_command_writes_confidence_probabilities_and_a_masked_map(tmp_path, monkeypatch):
    import logging

    from aerialseg import cli

    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    write_png(tmp_path / "photo.png", np.random.default_rng(4).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    _checkpoint(tmp_path / "model.pt")
    args = ["predict", str(tmp_path / "model.pt"), str(tmp_path / "photo.png"), "-o", str(tmp_path / "maps"),
            "--backend", "torch", "--probabilities", "--confidence-threshold", "0.6"]
    assert cli.main(args) == 0
    names = sorted(p.name for p in (tmp_path / "maps").iterdir())
    assert names == ["photo.png", "photo_confidence.qml", "photo_confidence.tif", "photo_masked.png", "photo_preview.png",
                     "photo_probabilities.tif"]
    from PIL import Image

    import rasterio

    with rasterio.open(tmp_path / "maps/photo_confidence.tif") as conf:
        codes = conf.read(1)
    ids, masked = (np.asarray(Image.open(tmp_path / f"maps/{n}")) for n in ("photo.png", "photo_masked.png"))
    np.testing.assert_array_equal(masked, np.where(codes / 255 < 0.6, IGNORE_INDEX, ids))


@pytest.mark.parametrize("value", ["0", "1.5", "x"])
def test_the_command_refuses_a_threshold_outside_0_1(value, capsys):
    from aerialseg import cli

    with pytest.raises(SystemExit):
        cli.main(["predict", "m.pt", "a.png", "-o", "out", "--confidence-threshold", value])
    assert "--confidence-threshold" in capsys.readouterr().err


def test_an_image_named_like_the_confidence_raster_of_another_is_refused(tmp_path, capsys):
    from aerialseg import cli

    for name in ("a", "a_confidence"):
        write_png(tmp_path / f"{name}.png", np.zeros((8, 8, 3), np.uint8))
    assert cli.main(["predict", "m.pt", str(tmp_path / "a.png"), str(tmp_path / "a_confidence.png"),
                     "-o", str(tmp_path / "o")]) == 1  # an input problem, said in one line
    assert "a_confidence" in capsys.readouterr().err


def _labelled_png(path, rng, shape):
    write_png(path.with_suffix(".png"), rng.integers(0, 256, (*shape, 3), dtype=np.uint8))
    ids = rng.integers(0, 3, shape)
    write_png(path.with_name(path.name + "_label.png"), np.asarray(COLORS, np.uint8)[ids])
    return ids


def test_the_calibration_job_fits_a_temperature_and_counts_every_test_pixel(tmp_path):
    import pandas as pd

    from aerialseg.calibration import ReliabilityCounts
    from aerialseg.config import Case, Run, Tile
    from aerialseg.jobs import calibration

    rng = np.random.default_rng(5)
    _labelled_png(tmp_path / "train", rng, (64, 96))
    truth = _labelled_png(tmp_path / "test", rng, (48, 80))
    pd.DataFrame({"row": [0, 0, 32, 32], "col": [0, 64, 32, 64], "split": ["train", "val", "val", "val"]}).to_csv(
        tmp_path / "p32.csv", index=False)
    _checkpoint(tmp_path / "model.pt")
    settings = _settings()
    settings["data"] = {"classes": [{"name": n, "color": list(c)} for n, c in zip(["tree", "road", "roof"], COLORS)],
                        "label_format": "color", "ignore_colors": [], "ignore_values": [], "bands": [0, 1, 2],
                        "value_range": None, "nodata": None}
    files = calibration.CalibrationFiles(
        [Tile("train", str(tmp_path / "train.png"), str(tmp_path / "train_label.png"), "")], tmp_path / "p32.csv",
        [Tile("test", str(tmp_path / "test.png"), str(tmp_path / "test_label.png"), "")],
        tmp_path / "calibration.csv", tmp_path / "reliability.csv", tmp_path / "reliability_scaled.csv")
    calibration.calibrate(settings, Run(Case("scratch", 32), 2), tmp_path / "model.pt", files)
    row = pd.read_csv(files.summary).iloc[0]
    assert (row["case"], row["repeat"], row["val_pixels"]) == ("scratch_p32", 2, 3 * 32 * 32)  # the three validation patches
    assert 0.05 <= row.temperature <= 20 and row.val_nll_scaled <= row.val_nll
    raw = ReliabilityCounts.from_frame(pd.read_csv(files.reliability))
    scaled = ReliabilityCounts.from_frame(pd.read_csv(files.scaled))
    assert raw.total == scaled.total == row.pixels == 48 * 80
    assert row.ece == pytest.approx(raw.ece()) and row.ece_scaled == pytest.approx(scaled.ece())
    assert raw.correct.sum() == scaled.correct.sum()  # a temperature moves confidences, never a class
    tile = prediction.TileFiles(tmp_path / "test.png", tmp_path / "ids.png", tmp_path / "color.png")
    prediction.predict_images(settings, tmp_path / "model.pt", [tile])
    from PIL import Image

    ids = np.asarray(Image.open(tmp_path / "ids.png"))
    assert row.accuracy == pytest.approx((ids == truth).mean())  # the map's own classes were scored


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_a_fitted_temperature_scales_the_confidence_and_never_the_ids(collared_geotiff, tmp_path, backend):
    """A run's calibration.csv with T = 2.5: the map's ids are those at T = 1, its confidence the
    softmax of the blended scores / T at the chosen class (`Block.confidence_at`), code for code."""
    import rasterio
    from aerialseg.inference import PredictOptions, load_model

    if backend == "onnxruntime":
        from aerialseg import export

        export.export(collared_geotiff[1], collared_geotiff[1].with_suffix(".onnx"))
    image, model = collared_geotiff
    (tmp_path / "calibration.csv").write_text("case,temperature\nscratch_p32,2.5\n")
    plain, scaled = (prediction.MapFiles(image, tmp_path / f"{n}/area.tif", tmp_path / f"{n}/area_preview.png",
                                         confidence=tmp_path / f"{n}/area_confidence.tif", calibration=c)
                     for n, c in (("plain", None), ("scaled", tmp_path / "calibration.csv")))
    prediction.map_images(_settings(backend=backend), model, [plain, scaled])
    read = {}
    for files in (plain, scaled):
        with rasterio.open(files.map) as m, rasterio.open(files.confidence) as c:
            read[files.map.parent.name] = m.read(1), c.read(1)
    np.testing.assert_array_equal(read["scaled"][0], read["plain"][0])
    loaded = load_model(PredictOptions.from_settings(_settings(backend=backend)), model)
    with loaded.open(image) as opened:
        blocks = list(loaded.iter_blocks(opened))
    expected = np.concatenate([to_codes(b.confidence_at(2.5), b.ids != IGNORE_INDEX) for b in blocks])
    assert np.abs(read["scaled"][1].astype(int) - expected).max() <= 1  # float rounding of the scores / T
    valid = read["plain"][1] > 0
    assert (read["scaled"][1][valid] <= read["plain"][1][valid]).all() and (read["scaled"][1] < read["plain"][1]).any()
