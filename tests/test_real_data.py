"""Label decoding and input errors on real imagery from ../shared/data (skipped without it).

The expected Dubai class shares are read from the data set's own README, measured there
independently of this project.
"""

import copy
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from aerialseg import config as cfg
from aerialseg import stats
from aerialseg.jobs import preflight, datasets
from aerialseg.class_ids import IGNORE_INDEX
from aerialseg.errors import InputError
from aerialseg.io.labels import load_pair, read_label
from aerialseg.config import with_data_defaults
from aerialseg.io.spec import DataSpec

from .conftest import ROOT, SHARED_DATA

DUBAI = SHARED_DATA / "dubai-tile8"
ISPRS = SHARED_DATA / "isprs-crops"

pytestmark = pytest.mark.skipif(
    not (DUBAI.is_dir() and ISPRS.is_dir()),
    reason=f"real imagery not found at {SHARED_DATA} (only present on the project's own machines)",
)


def dubai_config(train="005", test="008") -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    overlay = yaml.safe_load((ROOT / "config" / "dubai.yaml").read_text())
    config["data"] = overlay["data"]
    config["data"]["train"] = {"image": str(DUBAI / f"images/image_part_{train}.jpg"), "label": str(DUBAI / f"masks/image_part_{train}.png")}
    config["data"]["test"] = {"image": str(DUBAI / f"images/image_part_{test}.jpg"), "label": str(DUBAI / f"masks/image_part_{test}.png")}
    return cfg.validate(config)


def readme_shares() -> dict[str, dict[str, float]]:
    """The table 'Class shares (percent of pixels) per part' of shared/data/README.md."""
    text = (SHARED_DATA / "README.md").read_text()
    header = re.search(r"^\s*\| part \|(.+)\|$", text, re.M)
    columns = [c.strip() for c in header[1].split("|")]
    rows = re.findall(r"^\s*\| (\d{3}) \|(.+)\|$", text, re.M)
    return {part: dict(zip(columns, map(float, values.split("|")))) for part, values in rows}


@pytest.mark.parametrize("part", ["005", "008"])
def test_dubai_class_shares_match_the_data_set_readme(part):
    config = dubai_config()
    ids = read_label(DUBAI / f"masks/image_part_{part}.png", DataSpec.from_config(config))
    names = cfg.class_names(config)
    counts = stats.class_counts(ids, len(names))
    expected = readme_shares()[part]
    for name, n in zip(names, counts):
        assert 100 * n / ids.size == pytest.approx(expected[name], abs=0.05), name
    assert 100 * (ids == IGNORE_INDEX).mean() == pytest.approx(expected["ignore"], abs=0.05)


def test_dubai_class_stats_step_writes_both_images(tmp_path):
    config = dubai_config()
    datasets.class_stats(config, cfg.split_tiles(config), tmp_path / "stats.csv", tmp_path / "weights.json")
    table = pd.read_csv(tmp_path / "stats.csv")
    assert table.image.tolist() == ["train"] * 5 + ["test"] * 5
    assert table.groupby("image").share.sum().to_dict() == pytest.approx({"train": 100.0, "test": 100.0})


@pytest.mark.parametrize("city", ["vaihingen", "potsdam"])
def test_isprs_crops_decode_as_index_labels(city):
    data = {
        "label_format": "index",
        "classes": [
            {"name": "Buildings", "color": [0, 0, 255], "value": 2},
            {"name": "Tree", "color": [0, 255, 0], "value": 4},
            {"name": "Low vegetation", "color": [0, 255, 255], "value": 3},
            {"name": "Car", "color": [255, 255, 0], "value": 5},
            {"name": "Impervious surfaces", "color": [255, 255, 255], "value": 1},
        ],
        "ignore_values": [0],
    }
    spec = DataSpec.from_config({"data": with_data_defaults(data)})
    raw = np.asarray(Image.open(ISPRS / city / "label.png"))
    ids = read_label(ISPRS / city / "label.png", spec)
    assert ids.shape == (512, 512)
    assert set(np.unique(ids)) <= {0, 1, 2, 3, 4, IGNORE_INDEX}
    assert ((ids == IGNORE_INDEX) == (raw == 0)).all()  # the eroded boundary is ignored
    for class_id, value in enumerate([2, 4, 3, 5, 1]):
        assert ((ids == class_id) == (raw == value)).all()


def test_an_unknown_colour_names_the_file_and_the_colours():
    config = dubai_config()
    config["data"]["ignore_colors"] = [[0, 0, 0]]  # forget the Unlabeled grey
    path = config["data"]["train"]["label"]
    with pytest.raises(InputError) as error:
        load_pair(config["data"]["train"]["image"], path, DataSpec.from_config(config))
    message = str(error.value)
    raw = np.asarray(Image.open(path))
    unlabeled = int(np.all(raw == 155, axis=2).sum())
    assert unlabeled > 0
    assert message.startswith(f"{path}: {unlabeled} pixels have a colour")
    assert f"[155, 155, 155]: {unlabeled} pixels, e.g. at row" in message


def test_a_size_mismatch_is_caught_before_any_job():
    config = dubai_config()
    config["data"]["train"]["label"] = str(DUBAI / "masks/image_part_008.png")  # 1479 rows, image 1480
    with pytest.raises(InputError, match=r"label is 2149 x 1479 px but image .*image_part_005.jpg is 2149 x 1480 px"):
        preflight.check_inputs(config)


def test_an_image_smaller_than_the_largest_patch_is_caught_before_any_job():
    config = copy.deepcopy(dubai_config())
    for image in ("train", "test"):
        config["data"][image] = {"image": str(ISPRS / "potsdam/image.png"), "label": str(ISPRS / "potsdam/label.png")}
    config["experiment"]["patch_sizes"] = [1024]
    with pytest.raises(InputError, match=r"potsdam/image.png: image is 512 x 512 px, smaller than the largest patch size 1024 px"):
        preflight.check_inputs(config)
