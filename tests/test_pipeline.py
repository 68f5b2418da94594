"""Workflow steps called directly, without Snakemake, on small files they are given."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from aerialseg import config as cfg
from aerialseg.class_ids import IGNORE_INDEX
from aerialseg.jobs import runner, preflight, datasets, training, prediction, reporting
from aerialseg.errors import InputError
from aerialseg.io.labels import load_pair
from aerialseg.io.spec import DataSpec
from aerialseg.io.write import write_png

COLORS = [[0, 0, 255], [0, 255, 0], [255, 255, 255]]


@pytest.fixture
def small_config(default_config, tmp_path) -> dict:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 3, (96, 80))
    for image in ("train", "test"):
        tifffile.imwrite(tmp_path / f"{image}.tif", rng.integers(0, 4096, (96, 80, 4), dtype=np.uint16), photometric="minisblack", planarconfig="contig")
        write_png(tmp_path / f"{image}_label.png", np.asarray(COLORS, np.uint8)[ids])
        default_config["data"][image] = {"image": str(tmp_path / f"{image}.tif"), "label": str(tmp_path / f"{image}_label.png")}
    default_config["data"]["classes"] = [{"name": n, "color": c} for n, c in zip(["a", "b", "c"], COLORS)]
    default_config["data"]["band_numbers"] = [4, 1, 2]  # data.bands [3, 0, 1]
    default_config["data"]["value_range"] = [0, 4095]
    default_config["experiment"]["patch_sizes"] = [32, 64]
    return cfg.validate(default_config)


def labels(config) -> dict:
    return cfg.split_tiles(config)


def test_header_checks_pass_and_class_stats_follow_the_labels(small_config, tmp_path):
    preflight.check_inputs(small_config)
    datasets.class_stats(small_config, labels(small_config), tmp_path / "stats.csv", tmp_path / "weights.json")
    table = pd.read_csv(tmp_path / "stats.csv")
    assert table["class"].tolist() == ["a", "b", "c"] * 2 and table.pixels.sum() == 2 * 96 * 80


def test_bands_beyond_the_image_stop_before_any_job(small_config):
    small_config["data"]["bands"] = [0, 1, 5]
    with pytest.raises(InputError, match=r"train.tif: data.band_numbers asks for band 6 \(counting from 1; data.bands 5, "
                                         r"counting from 0\) but the image has 4 band"):
        preflight.check_inputs(small_config)


def test_patch_index_follows_the_configured_split(small_config, tmp_path):
    small_config["experiment"]["stride"] = 16
    datasets.patch_index(small_config, 32, {"train": small_config["data"]["train"]["image"]}, tmp_path / "p32.csv")
    index = pd.read_csv(tmp_path / "p32.csv")
    assert list(index.columns) == ["row", "col", "split"] and len(index) == 5 * 4


@pytest.mark.parametrize("budget, steps", [("epochs", {32: None, 64: None}), ("steps", {32: 12, 64: 12}),
                                           ("pixels", {32: 12, 64: 3})])
def test_a_training_budget_is_counted_in_the_smallest_patch_size_s_epochs(small_config, tmp_path, budget, steps):
    """96 x 80 px, stride 16, 20 % for validation: 16 training patches of 32 px (4 steps of 4
    an epoch), 5 of 64 px (1 step). Three epochs of the 32 px patches are 12 steps, or
    12 x 4 x 32^2 pixels, which batches of four 64 px patches see in 3 steps; under the epochs
    budget each case takes its own epochs (no step count is set)."""
    small_config["experiment"].update(stride=16, val_fraction=0.2)
    small_config["train"].update(budget=budget, epochs=3, batch_size=4)
    settings = cfg.job_settings(small_config, "train")
    for size in (32, 64):
        datasets.patch_index(small_config, size, {"train": small_config["data"]["train"]["image"]}, tmp_path / f"p{size}.csv")
    (tmp_path / "w.json").write_text('{"a": 1.0, "b": 1.0, "c": 1.0}')
    for size in (32, 64):
        files = training.TrainFiles(tiles=cfg.tiles(small_config, "train"), patches=tmp_path / f"p{size}.csv",
                                    weights=tmp_path / "w.json", model=tmp_path / "m.pt", history=tmp_path / "h.csv",
                                    reference_patches=tmp_path / "p32.csv" if budget != "epochs" else None)
        data = training._training_data(settings, files, size)
        train = training._train_settings(cfg.with_run_options(settings, small_config, "train"), 0, data, files)
        assert (train.epochs, train.budget_steps) == (3, steps[size])


def test_a_class_without_training_pixels_is_an_input_error(small_config, tmp_path):
    small_config["data"]["classes"].append({"name": "d", "color": [9, 9, 9]})
    with pytest.raises(InputError, match="train_label.png: class\\(es\\) 'd' have no pixels"):
        datasets.class_stats(small_config, labels(small_config), tmp_path / "stats.csv", tmp_path / "weights.json")
    assert not (tmp_path / "stats.csv").exists()


def test_a_diverging_case_stops_its_job_with_the_case_and_epoch_and_keeps_no_model(small_config, tmp_path):
    from aerialseg.config import Case, Run

    small_config["train"].update(lr=1e30, epochs=2, batch_size=4)
    datasets.class_stats(small_config, labels(small_config), tmp_path / "stats.csv", tmp_path / "weights.json")
    datasets.patch_index(small_config, 32, {"train": small_config["data"]["train"]["image"]}, tmp_path / "p32.csv")
    files = training.TrainFiles(
        tiles=cfg.tiles(small_config, "train"),
        patches=tmp_path / "p32.csv", weights=tmp_path / "weights.json", model=tmp_path / "model.pt",
        history=tmp_path / "history.csv", last=tmp_path / "last.pt", settings=tmp_path / "settings.yaml",
        resume=tmp_path / "state.pt")
    log = tmp_path / "train.log"
    assert runner.execute(training.train_case, log, small_config, Run(Case("scratch", 32), 2), files) == runner.FAILED
    text = log.read_text()
    assert "case scratch_p32 (repeat 2): training diverged in epoch 1: the training loss is nan" in text
    assert "Traceback" not in text
    assert not any(Path(path).exists() for path in (files.model, files.history, files.last, files.settings))


UTM_40N = "EPSG:32640"  # Dubai's UTM zone: a projected CRS


def write_geotiff(path, array, crs=None, transform=None):
    """An (H, W, C) array as a (Geo)TIFF, through rasterio."""
    import rasterio

    with rasterio.open(path, "w", driver="GTiff", height=array.shape[0], width=array.shape[1], count=array.shape[2],
                       dtype=str(array.dtype), crs=crs, transform=transform) as dataset:
        dataset.write(np.moveaxis(array, -1, 0))


@pytest.fixture
def geotiff_pair(default_config, tmp_path) -> tuple[dict, object]:
    """A config whose images are GeoTIFFs in UTM 40N with non-square 0.3 x 0.4 m pixels."""
    from rasterio.transform import Affine

    transform = Affine(0.3, 0.0, 305000.5, 0.0, -0.4, 2790000.25)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 3, (70, 90))
    for image in ("train", "test"):
        write_geotiff(tmp_path / f"{image}.tif", rng.integers(0, 256, (70, 90, 3), dtype=np.uint8), UTM_40N, transform)
        write_geotiff(tmp_path / f"{image}_label.tif", np.asarray(COLORS, np.uint8)[ids], UTM_40N, transform)
        default_config["data"][image] = {"image": str(tmp_path / f"{image}.tif"), "label": str(tmp_path / f"{image}_label.tif")}
    default_config["data"]["classes"] = [{"name": n, "color": c} for n, c in zip(["a", "b", "c"], COLORS)]
    default_config["experiment"]["patch_sizes"] = [32]
    return cfg.validate(default_config), transform


def _untrained_checkpoint(path, bands=(0, 1, 2), value_range=None):
    from aerialseg.model import ModelSpec, build, save_checkpoint

    spec = ModelSpec(3, "scratch", decoder_channels=32)
    save_checkpoint(path, build(spec), spec, case="scratch_p32", patch_size=32, data={
        "classes": [{"name": n, "color": c} for n, c in zip(["a", "b", "c"], COLORS)], "label_format": "color",
        "ignore_colors": [], "ignore_values": [], "bands": bands, "value_range": value_range, "image_bands": len(bands)})


def test_a_georeferenced_image_gets_a_geotiff_prediction_with_its_crs_and_transform(geotiff_pair, tmp_path):
    import rasterio
    from PIL import Image

    config, transform = geotiff_pair
    _untrained_checkpoint(tmp_path / "model.pt")
    ids_png, color_png = tmp_path / "out/prediction.png", tmp_path / "out/prediction_color.png"
    tile = prediction.TileFiles(config["data"]["test"]["image"], ids_png, color_png)
    prediction.predict_images(config, tmp_path / "model.pt", [tile])
    assert not (tmp_path / "out/prediction.tif").exists()  # rule prediction_geotiff's, from prediction.png
    prediction.tile_geotiff(config, tile.image, ids_png, tmp_path / "out/prediction.tif", tmp_path / "out/prediction.qml")
    style = (tmp_path / "out/prediction.qml").read_text()  # QGIS names the classes from it
    assert all(f'label="{name}"' in style for name in ("a", "b", "c"))
    with rasterio.open(tmp_path / "out/prediction.tif") as predicted:
        assert predicted.crs == rasterio.crs.CRS.from_string(UTM_40N) and predicted.transform == transform
        assert (predicted.height, predicted.width, predicted.count) == (70, 90, 1)
        ids = predicted.read(1)
        colormap = predicted.colormap(1)
        assert predicted.profile["tiled"] and predicted.profile["compress"] == "deflate"
        assert predicted.tags(1)["CLASSES"] == "0=a;1=b;2=c"
    np.testing.assert_array_equal(ids, np.asarray(Image.open(ids_png)))
    assert [colormap[i][:3] for i in range(3)] == [tuple(c) for c in COLORS]


def test_a_tiff_without_georeference_still_works_and_says_so(small_config, tmp_path, caplog):
    _untrained_checkpoint(tmp_path / "model.pt")
    small_config["data"]["bands"] = [0, 1, 2]
    tile = prediction.TileFiles(small_config["data"]["test"]["image"], tmp_path / "prediction.png",
                                tmp_path / "prediction_color.png")
    with caplog.at_level("INFO"):
        prediction.predict_images(small_config, tmp_path / "model.pt", [tile])
    ids = np.asarray(Image.open(tmp_path / "prediction.png"))
    assert ids.shape == (96, 80) and ids.max() < 3 and not (tmp_path / "prediction.tif").exists()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "prediction_color.png")), np.asarray(COLORS, np.uint8)[ids])
    assert caplog.text.count("a raster without a CRS or geotransform; the prediction is written as PNG only") == 1


def _tile(path, name, rng, shape, label_ids=None):
    from aerialseg.config import Tile

    write_png(path / f"{name}.png", rng.integers(0, 256, (*shape, 3), dtype=np.uint8))
    ids = rng.integers(0, 3, shape) if label_ids is None else label_ids
    write_png(path / f"{name}_label.png", np.asarray(COLORS, np.uint8)[ids])
    return Tile(name, str(path / f"{name}.png"), str(path / f"{name}_label.png"), name)


def test_training_tiles_lie_side_by_side_on_one_canvas(small_config, tmp_path):
    rng = np.random.default_rng(3)
    small_config["data"].update(bands=[0, 1, 2], value_range=None)
    tiles = [_tile(tmp_path, "north", rng, (40, 50)), _tile(tmp_path, "south", rng, (30, 20))]
    image, ids, offsets = datasets.read_tiles(small_config, tiles)
    assert image.shape == (40, 70, 3) and offsets == {"north": 0, "south": 50}
    north, north_ids = load_pair(tiles[0].image, tiles[0].label, DataSpec.from_config(small_config))
    south, south_ids = load_pair(tiles[1].image, tiles[1].label, DataSpec.from_config(small_config))
    np.testing.assert_array_equal(image[:, :50], north)
    np.testing.assert_array_equal(image[:30, 50:], south)
    np.testing.assert_array_equal(ids[:30, 50:], south_ids)
    assert (ids[30:, 50:] == IGNORE_INDEX).all() and (image[30:, 50:] == 0).all()  # below the short tile: nothing


def test_tiles_named_like_numbers_keep_their_place_on_the_canvas(small_config, tmp_path):
    """Tiles named "0001" and "0002" (as many datasets number them): the patch index's tile
    column is read as names, not numbers, so each patch lands on its own tile."""
    rng = np.random.default_rng(3)
    small_config["data"].update(bands=[0, 1, 2], value_range=None)
    small_config["experiment"].update(stride=None)
    tiles = [_tile(tmp_path, "0001", rng, (64, 64)), _tile(tmp_path, "0002", rng, (64, 96))]
    datasets.patch_index_of_tiles(small_config, 32, {t.name: t.image for t in tiles}, tmp_path / "p32.csv")
    (tmp_path / "w.json").write_text('{"a": 1.0, "b": 1.0, "c": 1.0}')
    files = training.TrainFiles(tiles=tiles, patches=tmp_path / "p32.csv", weights=tmp_path / "w.json",
                                model=tmp_path / "m.pt", history=tmp_path / "h.csv")
    data = training._training_data(small_config, files, 32)
    assert sorted(data.index.col.unique().tolist()) == [0, 32, 64, 96, 128]  # 0001 at 0, 0002 from column 64


def test_class_statistics_of_tiles_are_their_sums(small_config, tmp_path):
    rng = np.random.default_rng(4)
    tiles = [_tile(tmp_path, name, rng, (20, 30), np.full((20, 30), k)) for k, name in enumerate(["a", "b"])]
    small_config["train"]["weighting"] = "none"  # class c has no pixels
    small_config["data"].update(bands=[0, 1, 2], value_range=None)
    datasets.class_stats(small_config, {"train": tiles, "test": tiles[:1]}, tmp_path / "stats.csv", tmp_path / "w.json",
                         tmp_path / "tiles.csv")
    stats = pd.read_csv(tmp_path / "stats.csv").set_index(["image", "class"]).pixels
    assert stats["train"].tolist() == [600, 600, 0] and stats["test"].tolist() == [600, 0, 0]
    per_tile = pd.read_csv(tmp_path / "tiles.csv")
    assert list(per_tile.columns) == ["image", "tile", "class", "pixels", "share"]
    assert per_tile[(per_tile.image == "train") & (per_tile.tile == "b")].pixels.tolist() == [0, 600, 0]


def test_an_image_with_other_bands_stops_before_any_job_and_another_crs_warns(geotiff_pair, tmp_path):
    import rasterio
    from rasterio.enums import ColorInterp
    from rasterio.transform import Affine

    config, _ = geotiff_pair
    rng = np.random.default_rng(5)
    write_geotiff(tmp_path / "elsewhere.tif", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "EPSG:32633",
                  Affine(0.3, 0, 5e5, 0, -0.3, 5e6))
    config["data"]["predict"] = [str(tmp_path / "elsewhere.tif")]
    warnings = preflight.check_inputs(config)
    assert warnings == [f"{tmp_path}/elsewhere.tif: its {what}, the training tiles' {ours} ({tmp_path}/train.tif); it "
                        "is used anyway, but a model sees pixels, not metres"
                        for what, ours in (("CRS is EPSG:32633", "EPSG:32640"), ("pixel size is (0.3, 0.3)", "(0.3, 0.4)"))]
    write_geotiff(tmp_path / "four.tif", rng.integers(0, 256, (64, 64, 4), dtype=np.uint8))
    with rasterio.open(tmp_path / "four.tif", "r+") as dataset:  # GDAL's default for 4 bytes is RGBA: say RGB + IR
        dataset.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.undefined]
    config["data"]["predict"] = [str(tmp_path / "four.tif")]
    with pytest.raises(InputError, match="four.tif: the image to map \\(data.predict\\) has 4 data band\\(s\\), the "
                                         "training images 3"):
        preflight.check_inputs(config)
    # an alpha band is no data band: it marks no-data pixels
    with rasterio.open(tmp_path / "four.tif", "r+") as dataset:
        dataset.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    assert preflight.check_inputs(config) == []
    # a test tile is held to the training images too
    config["data"]["predict"] = []
    write_geotiff(tmp_path / "two.tif", rng.integers(0, 256, (70, 90, 2), dtype=np.uint8))
    config["data"]["test"] = {"image": str(tmp_path / "two.tif"), "label": config["data"]["test"]["label"]}
    config["data"]["bands"] = [0, 1]
    with pytest.raises(InputError, match="two.tif: the image has 2 data band\\(s\\), the training images 3"):
        preflight.check_inputs(config)


def test_the_console_command_maps_an_image_or_says_what_is_wrong(tmp_path, capsys):
    from aerialseg import cli

    _untrained_checkpoint(tmp_path / "model.pt")
    image = np.random.default_rng(6).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    write_png(tmp_path / "photo.png", image)
    assert cli.main(["predict", str(tmp_path / "model.pt"), str(tmp_path / "photo.png"), "-o", str(tmp_path / "maps"),
                     "--device", "cpu", "--threads", "1"]) == 0
    ids = np.asarray(Image.open(tmp_path / "maps/photo.png"))
    assert ids.shape == (48, 40) and ids.max() < 3
    preview = np.asarray(Image.open(tmp_path / "maps/photo_preview.png"))
    np.testing.assert_array_equal(preview, np.asarray(COLORS, np.uint8)[ids])  # the map in the classes' colours
    assert cli.main(["predict", str(tmp_path / "model.pt"), str(tmp_path / "nowhere.png"), "-o", str(tmp_path)]) == 1
    assert "no such image file" in capsys.readouterr().err
    write_png(tmp_path / "grey.png", image[:, :, 0])
    assert cli.main(["predict", str(tmp_path / "model.pt"), str(tmp_path / "grey.png"), "-o", str(tmp_path / "m2")]) == 1
    assert "grey.png: 1 data band(s), but" in capsys.readouterr().err and not (tmp_path / "m2").exists()


def test_no_data_pixels_are_left_out_of_the_counts_the_patches_and_every_metric(geotiff_pair, tmp_path):
    from aerialseg.config import Case, Run

    config, transform = geotiff_pair
    image = np.random.default_rng(7).integers(1, 256, (70, 90, 3), dtype=np.uint8)
    image[:, :40] = 0  # a no-data collar: the left 40 columns
    write_geotiff(tmp_path / "collared.tif", image, UTM_40N, transform)
    import rasterio

    with rasterio.open(tmp_path / "collared.tif", "r+") as dataset:
        dataset.nodata = 0
    tile = cfg.Tile("collared", str(tmp_path / "collared.tif"), config["data"]["test"]["label"])
    datasets.class_stats(config, {"train": [tile], "test": [tile]}, tmp_path / "s.csv", tmp_path / "w.json")
    assert pd.read_csv(tmp_path / "s.csv").groupby("image").pixels.sum().to_dict() == {"train": 70 * 50, "test": 70 * 50}
    datasets.patch_index(config, 32, {"collared": tile.image}, tmp_path / "p.csv")
    assert (pd.read_csv(tmp_path / "p.csv").col + 32 > 40).all()  # no patch wholly in the collar
    write_png(tmp_path / "prediction.png", np.zeros((70, 90), np.uint8))
    reporting.evaluate(config, Run(Case("scratch", 32)), "test image", reporting.EvaluationFiles(
        tile.image, tile.label, tmp_path / "prediction.png", tmp_path / "metrics.csv", tmp_path / "confusion.csv"))
    assert pd.read_csv(tmp_path / "confusion.csv", index_col=0).to_numpy().sum() == 70 * 50


OEM_VALUES = {"rangeland": 2, "developed": 3, "road": 4, "tree": 5, "water": 6, "building": 8}


def test_a_map_of_index_labels_holds_the_dataset_s_codes_and_gdal_reports_nothing(tmp_path, caplog):
    """OpenEarthMap-style uint8 labels (0 unknown, ignored; classes 2, 3, 4, 5, 6, 8): the
    GeoTIFF holds the codes, its colour table, class names and nodata are keyed by them, and
    decoding it as a label gives the confusion matrix of the class ids of prediction.png."""
    import rasterio
    from rasterio.transform import Affine

    from aerialseg.io.labels import read_label
    from aerialseg.metrics import confusion_matrix
    from aerialseg.model import ModelSpec, build, save_checkpoint

    rng = np.random.default_rng(8)
    labels = rng.choice([0, *OEM_VALUES.values()], size=(80, 96)).astype(np.uint8)
    transform = Affine(1e-5, 0, 55.1, 0, -1e-5, 25.2)
    write_geotiff(tmp_path / "tile.tif", rng.integers(0, 256, (80, 96, 3), dtype=np.uint8), "EPSG:4326", transform)
    write_geotiff(tmp_path / "tile_label.tif", labels[:, :, None], "EPSG:4326", transform)
    classes = [{"name": n, "color": [30 * i, 200, 255 - 30 * i], "value": v} for i, (n, v) in enumerate(OEM_VALUES.items())]
    spec = ModelSpec(len(classes), "scratch", decoder_channels=32)
    __import__("torch").manual_seed(3)
    save_checkpoint(tmp_path / "model.pt", build(spec), spec, case="scratch_p32", patch_size=32, data={
        "classes": classes, "label_format": "index", "ignore_colors": [], "ignore_values": [0], "bands": [0, 1, 2],
        "value_range": None, "nodata": None, "image_bands": 3})
    ids_png = tmp_path / "out/prediction.png"
    with caplog.at_level("DEBUG"):
        tile = prediction.TileFiles(tmp_path / "tile.tif", ids_png, tmp_path / "out/color.png")
        settings = cfg.sections(predict={"stride": 16, "vectors": True}, train={"device": "cpu", "threads": 1})
        prediction.predict_images(settings, tmp_path / "model.pt", [tile])
        settings["data"] = {"classes": classes, "label_format": "index", "ignore_values": [0]}  # as trained
        prediction.tile_geotiff(settings, tile.image, ids_png, tmp_path / "out/prediction.tif",
                                tmp_path / "out/prediction.qml")
        prediction.polygons(settings, tmp_path / "out/prediction.tif", tmp_path / "out/prediction.gpkg")
    gdal_trouble = [r.getMessage() for r in caplog.records
                    if r.name.startswith("rasterio") and ("GDAL signalled" in r.getMessage() or r.levelno >= 30)]
    assert gdal_trouble == [], gdal_trouble
    ids = np.asarray(Image.open(ids_png))
    with rasterio.open(tmp_path / "out/prediction.tif") as predicted:
        codes = predicted.read(1)
        assert set(np.unique(codes)) <= set(OEM_VALUES.values())  # the dataset's codes, not 0..5
        assert predicted.nodata == 0  # the ignored "unknown" value: no class takes it
        assert predicted.tags(1)["CLASSES"] == ";".join(f"{v}={n}" for n, v in OEM_VALUES.items())
        assert [predicted.colormap(1)[v][:3] for v in OEM_VALUES.values()] == [tuple(c["color"]) for c in classes]
    spec_index = DataSpec(colors=tuple(tuple(c["color"]) for c in classes), label_format="index",
                          values=tuple(OEM_VALUES.values()), ignore_values=(0,))
    truth = read_label(tmp_path / "tile_label.tif", spec_index)
    decoded = read_label(tmp_path / "out/prediction.tif", spec_index)  # the map read back as a label
    np.testing.assert_array_equal(confusion_matrix(truth, decoded, 6), confusion_matrix(truth, ids, 6))
    assert ids.max() < 6  # prediction.png keeps the class ids
    from pyogrio.raw import read

    meta, _, _, (names, values) = read(tmp_path / "out/prediction.gpkg", layer="map")  # polygons keyed by the codes too
    assert list(meta["fields"]) == ["class", "class_id"] and len(names)
    assert {(name, OEM_VALUES[name]) for name in names} == set(zip(names, values.tolist()))


def test_the_nodata_value_of_a_map_never_collides_with_a_class_value():
    from aerialseg.io.write import map_codes

    assert map_codes("color", None) == (None, 255)  # colour labels: class ids, 255 for no data
    assert map_codes("index", [2, 3, 8], [0]) == ([2, 3, 8], 0)  # the ignored value
    assert map_codes("index", [2, 3, 8]) == ([2, 3, 8], 255)
    assert map_codes("index", [0, 255, 7]) == ([0, 255, 7], 254)  # the largest value no class takes
    assert map_codes("index", [1, 300], [300]) == ([1, 300], 255)  # an ignore value that is a class does not count


def test_the_console_command_names_an_unreadable_image_in_one_line(tmp_path, capsys, monkeypatch):
    import logging

    from aerialseg import cli

    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as in a fresh process: no handler of an earlier test
    _untrained_checkpoint(tmp_path / "model.pt")
    (tmp_path / "broken.tif").write_bytes(b"II*\x00 not a tiff")
    assert cli.main(["predict", str(tmp_path / "model.pt"), str(tmp_path / "broken.tif"), "-o", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"aerialseg: {tmp_path}/broken.tif: cannot read image") and "Traceback" not in err
