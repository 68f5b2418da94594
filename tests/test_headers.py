"""Input headers read once and kept between parses (aerialseg.io.headers)."""

import os

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

from aerialseg.io import headers
from aerialseg.io.headers import Header, HeaderRecord
from aerialseg.io.write import write_png


def _geotiff(path, crs="EPSG:32640", pixel=0.5, bands=3):
    with rasterio.open(path, "w", driver="GTiff", height=40, width=60, count=bands, dtype="uint8", crs=crs,
                       transform=Affine(pixel, 0, 305000, 0, -pixel, 2790000)) as dataset:
        dataset.write(np.zeros((bands, 40, 60), np.uint8))


def test_a_header_says_size_bands_and_where_an_image_lies(tmp_path):
    _geotiff(tmp_path / "geo.tif")
    write_png(tmp_path / "rgba.png", np.zeros((30, 20, 4), np.uint8))
    assert headers.read_header(tmp_path / "geo.tif") == Header(40, 60, 3, 3, True, "EPSG:32640", (0.5, 0.5))
    assert headers.read_header(tmp_path / "rgba.png") == Header(30, 20, 4, 3, False)  # alpha: no data band


def test_a_kept_header_is_used_until_the_file_or_a_file_beside_it_changes(tmp_path, monkeypatch):
    image, record = tmp_path / "photo.png", tmp_path / "record" / "headers.json"
    write_png(image, np.zeros((30, 20, 3), np.uint8))
    first = HeaderRecord(record)
    assert not first.header(image).georeferenced and first.read == [str(image)]
    first.save()

    opened = []
    real = headers.read_header
    monkeypatch.setattr(headers, "read_header", lambda path: opened.append(path) or real(path))
    again = HeaderRecord(record)
    assert again.header(image) == Header(30, 20, 3, 3, False) and opened == []  # the record's: no image opened
    (tmp_path / "photo.pgw").write_text("0.5\n0\n0\n-0.5\n305000\n2790000\n")  # a world file now places it
    (tmp_path / "photo.prj").write_text('PROJCS["WGS 84 / UTM zone 40N",GEOGCS["WGS 84",DATUM["WGS_1984",'
                                        'SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],'
                                        'UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
                                        'PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",57],'
                                        'PARAMETER["scale_factor",0.9996],PARAMETER["false_easting",500000],'
                                        'PARAMETER["false_northing",0],UNIT["metre",1]]')
    assert again.header(image).georeferenced and opened == [image]
    write_png(image, np.zeros((31, 20, 3), np.uint8))
    os.utime(image, ns=(1, 1))  # a new file with an old time: its size still tells
    assert again.header(image).height == 31 and len(opened) == 2


def test_an_unreadable_record_is_read_again_from_the_files(tmp_path):
    image, record = tmp_path / "a.png", tmp_path / "headers.json"
    write_png(image, np.zeros((8, 9, 3), np.uint8))
    record.write_text('{"half-written')
    kept = HeaderRecord(record)
    assert kept.header(image).width == 9 and kept.read == [str(image)]
    kept.save()
    assert HeaderRecord(record).entries.keys() == {str(image)}


@pytest.mark.parametrize("kept", [False, True])
def test_input_checks_warn_the_same_from_kept_headers(tmp_path, default_config, monkeypatch, kept):
    from aerialseg import config as cfg
    from aerialseg.jobs.preflight import check_inputs

    for name in ("train", "test", "area"):
        _geotiff(tmp_path / f"{name}.tif", pixel=1.0 if name == "area" else 0.5)
    for name in ("train", "test"):
        write_png(tmp_path / f"{name}_label.png", np.full((40, 60, 3), 255, np.uint8))
    config = cfg.validate({**default_config, "data": {**default_config["data"],
                                                      "train": {"image": str(tmp_path / "train.tif"),
                                                                "label": str(tmp_path / "train_label.png")},
                                                      "test": {"image": str(tmp_path / "test.tif"),
                                                               "label": str(tmp_path / "test_label.png")},
                                                      "predict": [str(tmp_path / "area.tif")]},
                           "experiment": {**default_config["experiment"], "patch_sizes": [32]}})
    source = headers.read_header
    if kept:  # a first parse keeps the headers; the next one opens no image
        first = HeaderRecord(tmp_path / "h.json")
        check_inputs(config, headers=first.header)
        first.save()
        monkeypatch.setattr(headers, "read_header", lambda path: pytest.fail(f"{path} opened again"))
        source = HeaderRecord(tmp_path / "h.json").header
    warnings = check_inputs(config, headers=source)
    assert warnings == [f"{tmp_path / 'area.tif'}: its pixel size is (1.0, 1.0), the training tiles' (0.5, 0.5) "
                        f"({tmp_path / 'train.tif'}); it is used anyway, but a model sees pixels, not metres"]
