"""The console command: its help, exit statuses, refusing to overwrite, the QGIS style, the
bands and no-data value it reads, world files, and `aerialseg info`."""

import logging
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (requirements.txt)")
pytest.importorskip("torch")

from aerialseg import cli, export  # noqa: E402
from aerialseg.io.read import georeference  # noqa: E402
from aerialseg.io.write import write_png  # noqa: E402
from aerialseg.jobs import prediction  # noqa: E402
from tests.test_pipeline import COLORS, UTM_40N, _untrained_checkpoint, write_geotiff  # noqa: E402

NAMES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def model_onnx(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    _untrained_checkpoint(folder / "model.pt")
    export.export(folder / "model.pt", folder / "model.onnx", {"stride": 16, "blend": "mean"})
    return folder / "model.onnx"


@pytest.fixture(autouse=True)
def _fresh_logging(monkeypatch):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as in a fresh process


def _geotiff(path, bands=3, seed=0):
    from rasterio.transform import Affine

    rng = np.random.default_rng(seed)
    write_geotiff(path, rng.integers(1, 256, (40, 48, bands), dtype=np.uint8), UTM_40N,
                  Affine(0.5, 0, 305000, 0, -0.5, 2790000))
    return path


def _predict(model, image, out, *options):
    return cli.main(["predict", str(model), str(image), "-o", str(out), "--threads", "1", *options])


@pytest.mark.parametrize("command", [[], ["predict"], ["export"], ["info"]])
def test_every_help_is_plain_text_with_defaults_examples_and_exit_statuses(command, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main([*command, "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "examples:\n  aerialseg " in text and "exit status:" in text and "130  interrupted" in text
    assert "`" not in text and "map_images" not in text and "None" not in text
    if command == ["predict"]:
        assert "(default: auto)" in text and "(default: mean)" in text and "(default: 0)" in text
        for option in ("--overwrite", "--bands", "--nodata", "--window", "--stride", "cuda:N", "-q, --quiet",
                       "-v, --verbose", "--debug"):
            assert option in text


@pytest.mark.parametrize("bad", [["--device", "gpu"], ["--bands", "0,1,2"], ["--bands", "x"], ["--window", "40"],
                                 ["--stride", "0"], ["--quiet", "--verbose"], ["--unknown"]])
def test_a_usage_error_exits_with_status_2(bad, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["predict", "model.onnx", "image.tif", "-o", str(tmp_path), *bad])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("usage: aerialseg")


def test_an_input_problem_is_one_line_and_status_1_with_the_traceback_only_under_debug(model_onnx, tmp_path, capsys):
    assert _predict(model_onnx, tmp_path / "nowhere.tif", tmp_path / "maps") == 1
    err = capsys.readouterr().err
    assert err == f"aerialseg: no such image file: {tmp_path}/nowhere.tif\n"
    assert _predict(model_onnx, tmp_path / "nowhere.tif", tmp_path / "maps", "--debug") == 1
    assert "Traceback" in capsys.readouterr().err
    assert _predict(tmp_path / "none.onnx", _geotiff(tmp_path / "area.tif"), tmp_path / "maps") == 1
    assert capsys.readouterr().err.strip().endswith("none.onnx: model file does not exist")
    assert not (tmp_path / "maps").exists()


def test_an_unforeseen_error_is_one_line_too_and_an_interruption_exits_with_130(model_onnx, tmp_path, capsys,
                                                                                monkeypatch):
    image = _geotiff(tmp_path / "area.tif")

    def fails(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(prediction, "map_images", fails)
    assert _predict(model_onnx, image, tmp_path / "maps") == 1
    err = capsys.readouterr().err
    assert err.startswith("aerialseg: unexpected error (RuntimeError; run again with --debug") and err.count("\n") == 1
    assert _predict(model_onnx, image, tmp_path / "maps", "--debug") == 1
    assert "Traceback" in capsys.readouterr().err

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prediction, "map_images", interrupted)
    assert _predict(model_onnx, image, tmp_path / "maps") == 130
    assert capsys.readouterr().err == "aerialseg: interrupted\n"


def test_an_option_not_given_takes_the_schemas_default_and_a_given_one_wins(model_onnx, tmp_path, monkeypatch):
    from aerialseg.config import load_schema

    seen = []
    monkeypatch.setattr(prediction, "map_images", lambda settings, *args, **kwargs: seen.append(settings["predict"]))
    image = _geotiff(tmp_path / "area.tif")
    assert _predict(model_onnx, image, tmp_path / "a") == 0
    assert _predict(model_onnx, image, tmp_path / "b", "--blend", "gaussian", "--min-area", "7", "--tta") == 0
    schema = load_schema()["properties"]["predict"]["properties"]
    defaults = {key: rule["default"] for key, rule in schema.items() if "default" in rule}
    assert seen[0] == {**defaults, "stride": None, "threads": 1}  # _predict gives --threads 1
    assert seen[1] == {**seen[0], "blend": "gaussian", "min_area": 7, "tta": True}


def test_quiet_says_only_warnings_and_verbose_more(model_onnx, tmp_path, capsys):
    from aerialseg.cli import main

    image = _geotiff(tmp_path / "area.tif")
    assert _predict(model_onnx, image, tmp_path / "q", "-q") == 0
    assert capsys.readouterr().err == ""
    assert _predict(model_onnx, image, tmp_path / "n") == 0
    assert "area.tif: mapped to" in capsys.readouterr().err
    assert main(["-q", "predict", str(model_onnx), str(image), "-o", str(tmp_path / "before"), "--threads", "1"]) == 0
    assert capsys.readouterr().err == ""  # before the command as after it
    assert main(["-q", "predict", "-v", str(model_onnx), str(image), "-o", str(tmp_path / "x")]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_a_geotiff_map_gets_a_qgis_style_listing_every_class_and_polygons_named_by_class(model_onnx, tmp_path):
    import rasterio
    from pyogrio.raw import read

    assert _predict(model_onnx, _geotiff(tmp_path / "area.tif"), tmp_path / "maps", "--vectors") == 0
    style = ET.parse(tmp_path / "maps/area.qml").getroot()
    renderer = style.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    entries = [(e.get("value"), e.get("label"), e.get("color")) for e in renderer.iter("paletteEntry")]
    assert entries == [(str(i), name, "#{:02x}{:02x}{:02x}".format(*color))
                       for i, (name, color) in enumerate(zip(NAMES, COLORS))]
    with rasterio.open(tmp_path / "maps/area.tif") as dataset:
        assert dataset.crs == UTM_40N and set(np.unique(dataset.read(1))) <= {0, 1, 2}
    meta, _, _, (names, ids, confidence) = read(tmp_path / "maps/area.gpkg", read_geometry=False)
    assert list(meta["fields"]) == ["class", "class_id", "confidence"] and len(names) and set(names) <= set(NAMES)
    assert [NAMES[i] for i in ids] == list(names) and ((confidence > 0) & (confidence <= 1)).all()


def test_an_existing_map_is_refused_and_overwrite_leaves_no_file_of_the_earlier_map(model_onnx, tmp_path, capsys):
    image, maps = _geotiff(tmp_path / "area.tif"), tmp_path / "maps"
    assert _predict(model_onnx, image, maps, "--vectors") == 0
    before = {path.name: path.stat().st_mtime_ns for path in maps.iterdir()}
    assert set(before) == {"area.tif", "area_preview.png", "area.qml", "area.gpkg", "area_confidence.tif",
                           "area_confidence.qml"}
    capsys.readouterr()
    assert _predict(model_onnx, image, maps) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"aerialseg: {maps}/area.tif exists (and 5 more file(s)") and "--overwrite" in err
    assert {path.name: path.stat().st_mtime_ns for path in maps.iterdir()} == before  # nothing touched
    for name in ("area_confidence.tif", "area_probabilities.tif", "area.png"):  # files of other, earlier runs
        (maps / name).write_bytes(b"stale")
    assert _predict(model_onnx, image, maps) == 1  # a stale file alone is refused too
    assert _predict(model_onnx, image, maps, "--overwrite") == 0
    assert sorted(path.name for path in maps.iterdir()) == ["area.qml", "area.tif", "area_confidence.qml",
                                                            "area_confidence.tif", "area_preview.png"]
    assert all(path.stat().st_mtime_ns != before[path.name] for path in maps.iterdir())
    assert _predict(model_onnx, image, maps, "--overwrite", "--format", "png") == 0  # a PNG map replaces the GeoTIFF
    assert sorted(path.name for path in maps.iterdir()) == ["area.png", "area_confidence.qml", "area_confidence.tif",
                                                            "area_preview.png"]
    assert np.asarray(Image.open(maps / "area.png")).shape == (40, 48)


def test_bands_counted_from_1_and_a_nodata_value_override_the_models(model_onnx, tmp_path, capsys):
    import rasterio
    from rasterio.enums import ColorInterp

    image = _geotiff(tmp_path / "four.tif", bands=4)
    with rasterio.open(image, "r+") as dataset:
        pixels = dataset.read()
        pixels[:, :, :10] = 0  # a collar of zeros, not marked as no-data in the file
        dataset.write(pixels)
        dataset.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.undefined]  # no alpha
    assert _predict(model_onnx, image, tmp_path / "m") == 1
    assert "four.tif: 4 data band(s), but" in capsys.readouterr().err
    assert _predict(model_onnx, image, tmp_path / "m", "--bands", "1,2") == 1
    assert "bands 1,2 (counting from 1): 2 band(s), but" in capsys.readouterr().err
    assert _predict(model_onnx, image, tmp_path / "m", "--bands", "5,2,1") == 1
    assert "four.tif: band 5 asked for (--bands, counting from 1), but the image has 4" in capsys.readouterr().err
    assert _predict(model_onnx, image, tmp_path / "m", "--bands", "4,2,1", "--nodata", "0") == 0
    with rasterio.open(tmp_path / "m/four.tif") as dataset:
        ids = dataset.read(1)
        assert (ids[:, :10] == dataset.nodata).all() and (ids[:, 10:] != dataset.nodata).all()


def test_a_png_with_a_world_file_is_mapped_as_a_geotiff_with_its_transform(model_onnx, tmp_path, capsys):
    import rasterio
    from rasterio.crs import CRS

    write_png(tmp_path / "photo.png", np.random.default_rng(3).integers(0, 256, (40, 48, 3), dtype=np.uint8))
    (tmp_path / "photo.pgw").write_text("0.5\n0\n0\n-0.5\n305000.25\n2790000.25\n")  # pixel centres, as world files say
    where = georeference(tmp_path / "photo.png")
    assert where.crs is None and where.world_file == tmp_path / "photo.pgw"
    assert tuple(where.transform)[:6] == (0.5, 0, 305000, 0, -0.5, 2790000.5)  # GDAL turns them into corners
    assert _predict(model_onnx, tmp_path / "photo.png", tmp_path / "maps", "-q") == 0
    warning = capsys.readouterr().err
    assert "WARNING aerialseg: " in warning and "photo.png: placed by its world file" in warning
    assert "its CRS is unknown" in warning and (tmp_path / "maps/photo.qml").is_file()
    with rasterio.open(tmp_path / "maps/photo.tif") as dataset:
        assert dataset.transform == where.transform and dataset.crs is None
    (tmp_path / "photo.prj").write_text(CRS.from_string(UTM_40N).to_wkt())
    assert georeference(tmp_path / "photo.png").crs == CRS.from_string(UTM_40N)
    assert georeference(tmp_path / "maps/photo_preview.png") is None  # no world file: no georeference


def test_info_says_what_a_model_was_trained_on_and_reads_a_model_onnx_without_torch(model_onnx, tmp_path):
    (model_onnx.parent / "test").mkdir(exist_ok=True)
    (model_onnx.parent / "test/metrics.csv").write_text("class,iou\na,0.5\nb,0.7\nc,0.6\n")
    code = ("import sys; from aerialseg.cli import main; status = main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code, "info", str(model_onnx)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for line in ("case:        scratch_p32", "patch size:  32 px", "bands:       1,2,3 (counting from 1",
                 "classes:     3", "    0  a (#0000ff)", "    2  c (#ffffff)", "scores:      test mIoU 0.6000"):
        assert line in done.stdout
    assert cli.main(["info", str(model_onnx.with_suffix(".pt"))]) == 0
    assert cli.main(["info", str(tmp_path / "notes.txt")]) == 1


def test_the_command_line_page_documents_every_option_and_exit_status():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs/command-line.md").read_text()
    commands = cli.parser()._subparsers._group_actions[0].choices
    assert set(commands) == {"predict", "export", "info"}
    for name, command in commands.items():
        assert f"## `aerialseg {name} " in page
        options = [o for action in command._actions for o in action.option_strings if o.startswith("--")]
        assert [o for o in options if f"`{o}" not in page and o != "--help"] == [], name
    for status in (cli.DONE, cli.FAILED, cli.USAGE, cli.INTERRUPTED):
        assert f"| {status} |" in page
