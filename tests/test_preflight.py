"""The pre-flight job: the input files checked from their headers (aerialseg.io.headers) before
any job reads them, and the record of which images are georeferenced, which the rules read."""

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

from aerialseg import config as cfg
from aerialseg.io import headers
from aerialseg.io.headers import Header
from aerialseg.io.write import write_png
from aerialseg.jobs import preflight, runner


def _geotiff(path, crs="EPSG:32640", pixel=0.5, bands=3):
    with rasterio.open(path, "w", driver="GTiff", height=40, width=60, count=bands, dtype="uint8", crs=crs,
                       transform=Affine(pixel, 0, 305000, 0, -pixel, 2790000)) as dataset:
        dataset.write(np.zeros((bands, 40, 60), np.uint8))


def test_a_header_says_size_bands_and_where_an_image_lies(tmp_path):
    _geotiff(tmp_path / "geo.tif")
    write_png(tmp_path / "rgba.png", np.zeros((30, 20, 4), np.uint8))
    assert headers.read_header(tmp_path / "geo.tif") == Header(40, 60, 3, 3, True, "EPSG:32640", (0.5, 0.5))
    assert headers.read_header(tmp_path / "rgba.png") == Header(30, 20, 4, 3, False)  # alpha: no data band


@pytest.fixture
def study(tmp_path, default_config):
    """A georeferenced training pair, a test pair without georeference, and an image to map at
    another pixel size."""
    for name in ("train", "area"):
        _geotiff(tmp_path / f"{name}.tif", pixel=1.0 if name == "area" else 0.5)
    write_png(tmp_path / "test.png", np.zeros((40, 60, 3), np.uint8))
    for name in ("train", "test"):
        write_png(tmp_path / f"{name}_label.png", np.full((40, 60, 3), 255, np.uint8))
    return cfg.validate({**default_config, "data": {**default_config["data"],
                                                    "train": {"image": str(tmp_path / "train.tif"),
                                                              "label": str(tmp_path / "train_label.png")},
                                                    "test": {"image": str(tmp_path / "test.png"),
                                                             "label": str(tmp_path / "test_label.png")},
                                                    "predict": [str(tmp_path / "area.tif")]},
                         "experiment": {**default_config["experiment"], "patch_sizes": [32]}})


def test_the_job_records_the_georeferenced_images_and_warns_of_another_pixel_size(study, tmp_path, monkeypatch):
    opened = []
    real = headers.read_header
    monkeypatch.setattr(preflight, "read_header", lambda path: opened.append(path) or real(path))
    out, log = tmp_path / "results/data/preflight.json", tmp_path / "preflight.log"
    assert runner.execute(preflight.preflight, log, study, out) == 0
    assert json.loads(out.read_text()) == {"georeferenced": [str(tmp_path / "area.tif"), str(tmp_path / "train.tif")]}
    assert sorted(opened) == sorted(str(tmp_path / name) for name in
                                    ("train.tif", "train_label.png", "test.png", "test_label.png", "area.tif"))
    assert (f"WARNING aerialseg: {tmp_path / 'area.tif'}: its pixel size is (1.0, 1.0), the training tiles' (0.5, 0.5) "
            f"({tmp_path / 'train.tif'}); it is used anyway, but a model sees pixels, not metres") in log.read_text()


def test_a_bad_input_stops_the_job_in_one_line_and_leaves_no_record(study, tmp_path):
    write_png(tmp_path / "test_label.png", np.full((39, 60, 3), 255, np.uint8))
    out, log = tmp_path / "preflight.json", tmp_path / "preflight.log"
    assert runner.execute(preflight.preflight, log, study, out) == runner.FAILED
    assert "test_label.png: label is 60 x 39 px but image" in log.read_text() and "Traceback" not in log.read_text()
    assert not out.exists()
