"""Workflow steps called directly, without Snakemake, on small files they are given."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from aerialseg import config as cfg
from aerialseg import pipeline
from aerialseg.images import InputError, write_png

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
    default_config["data"]["bands"] = [3, 0, 1]
    default_config["data"]["value_range"] = [0, 4095]
    default_config["experiment"]["patch_sizes"] = [32, 64]
    return cfg.validate(default_config)


def test_header_checks_pass_and_class_stats_follow_the_labels(small_config, tmp_path):
    pipeline.check_inputs(small_config)
    pipeline.class_stats(small_config, tmp_path / "stats.csv", tmp_path / "weights.json")
    table = pd.read_csv(tmp_path / "stats.csv")
    assert table["class"].tolist() == ["a", "b", "c"] * 2 and table.pixels.sum() == 2 * 96 * 80


def test_bands_beyond_the_image_stop_before_any_job(small_config):
    small_config["data"]["bands"] = [0, 1, 5]
    with pytest.raises(InputError, match=r"train.tif: data.bands asks for band 5 \(counting from 0\) but the image has 4 band"):
        pipeline.check_inputs(small_config)


def test_patch_index_follows_the_configured_split(small_config, tmp_path):
    small_config["experiment"]["stride"] = 16
    pipeline.patch_index(small_config, 32, tmp_path / "p32.csv")
    index = pd.read_csv(tmp_path / "p32.csv")
    assert list(index.columns) == ["row", "col", "split"] and len(index) == 5 * 4


def test_a_class_without_training_pixels_is_an_input_error(small_config, tmp_path):
    small_config["data"]["classes"].append({"name": "d", "color": [9, 9, 9]})
    with pytest.raises(InputError, match="train_label.png: class\\(es\\) 'd' have no pixels"):
        pipeline.class_stats(small_config, tmp_path / "stats.csv", tmp_path / "weights.json")
    assert not (tmp_path / "stats.csv").exists()


def test_a_diverging_case_stops_its_job_with_the_case_and_epoch_and_keeps_no_model(small_config, tmp_path):
    from aerialseg.config import Case

    small_config["train"].update(lr=1e30, epochs=2, batch_size=4)
    pipeline.class_stats(small_config, tmp_path / "stats.csv", tmp_path / "weights.json")
    pipeline.patch_index(small_config, 32, tmp_path / "p32.csv")
    outputs = [tmp_path / name for name in ("model.pt", "history.csv", "last.pt")]
    log = tmp_path / "train.log"
    with pytest.raises(SystemExit) as stop:
        pipeline.run(pipeline.train_case, log, small_config, Case("scratch", 32), tmp_path / "p32.csv",
                     tmp_path / "weights.json", *outputs, resume_path=tmp_path / "state.pt")
    assert stop.value.code == 1
    text = log.read_text()
    assert "case scratch_p32: training diverged in epoch 1: the training loss is nan" in text
    assert "Traceback" not in text
    assert not any(path.exists() for path in outputs)
