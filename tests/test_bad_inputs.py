"""Broken and hostile inputs, table by table: each row says what is wrong, where it must be
caught (before any job, or in which job), a fragment of the message, and that the step leaves
no output behind. Hostile files (a resume state or a checkpoint that would run code when
unpickled) must not run it: the marker file their code would create must not appear.

Before-any-job rows call what the workflow does first: ``rules/common.smk`` validates the
config (`config.validate`) and the pre-flight job checks the input files' headers
(`preflight.check_inputs`) before any other job reads them; job rows call the job's function through `runner.execute`, as
its rule script does, and read its log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from aerialseg import config as cfg
from aerialseg import demo
from aerialseg.jobs import runner, preflight, datasets, training, prediction
from aerialseg.config import Case, Run
from aerialseg.errors import ConfigError, InputError
from aerialseg.io.write import write_png

ROOT = Path(__file__).resolve().parents[1]
SIZE = 128


class RunsCode:
    """Unpickled, it runs a shell command: what an attacker would put into results/."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def make_world(folder: Path) -> dict:
    """A valid tiny study in ``folder``: two 128 px demo scenes as PNG pairs, one 32 px case, one epoch."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for seed, image in enumerate(("train", "test")):
        pixels, label = demo.render_scene(SIZE, seed=seed)
        write_png(folder / f"{image}.png", pixels)
        write_png(folder / f"{image}_label.png", label)
        config["data"][image] = {"image": str(folder / f"{image}.png"), "label": str(folder / f"{image}_label.png")}
    config["experiment"].update(patch_sizes=[32], stride=32)
    config["train"].update(epochs=1, batch_size=4, threads=1)
    return config


@pytest.fixture
def world(tmp_path) -> dict:
    return make_world(tmp_path)


def checked(config: dict) -> dict:
    """What the workflow does before any job: the schema and cross-key checks, then headers."""
    config = cfg.validate(config)
    preflight.check_inputs(config)
    return config


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# --- before any job -----------------------------------------------------------------------


def _set(*keys_value):
    *keys, value = keys_value

    def apply(config, tmp):
        node = config
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value(tmp) if callable(value) else value

    return apply


def _zero_byte_image(config, tmp):
    (tmp / "train.png").write_bytes(b"")


def _smaller_label(config, tmp):
    write_png(tmp / "train_label.png", np.zeros((SIZE - 32, SIZE, 3), np.uint8))


def _small_images(config, tmp):
    config["experiment"]["patch_sizes"] = [256]


def _folder_as_image(config, tmp):
    (tmp / "folder").mkdir()
    config["data"]["test"]["image"] = str(tmp / "folder")


def _both_band_keys(config, tmp):
    config["data"].update(bands=[2, 1, 0], band_numbers=[1, 2, 3])


def _two_problems(config, tmp):
    config["experiment"]["patch_sizes"] = [30]
    config["data"]["classes"].append(dict(config["data"]["classes"][0]))


BEFORE_ANY_JOB = {
    "zero-byte image": (_zero_byte_image, InputError, "train.png: cannot read image"),
    "image and label sizes differ": (_smaller_label, InputError, "train_label.png: label is 128 x 96 px but image"),
    "image smaller than the patch": (_small_images, InputError, "smaller than the largest patch size 256 px"),
    "patch size not a multiple of 16": (_set("experiment", "patch_sizes", [30]), ConfigError,
                                        "experiment.patch_sizes[0]: 30 is not a multiple of 16"),
    "a number YAML reads as text": (_set("train", "lr", "1e-3"), ConfigError,
                                    "train.lr: '1e-3' is a string, not a number: YAML reads 1e-3 as text"),
    "unknown key": (_set("train", "epoch", 3), ConfigError, "train: unknown key(s) 'epoch'"),
    "bands the image lacks": (_set("data", "band_numbers", [1, 2, 6]), InputError,
                              "data.band_numbers asks for band 6 (counting from 1; data.bands 5, counting from 0) but "
                              "the image has 3 band(s)"),
    "bands the image lacks, counted from 0 (deprecated)": (
        _set("data", "bands", [0, 1, 5]), InputError, "data.band_numbers asks for band 6 (counting from 1; data.bands 5"),
    "both ways of naming bands": (_both_band_keys, ConfigError, "data.bands [2, 1, 0] and data.band_numbers [1, 2, 3]: "
                                  "give only data.band_numbers (counting from 1"),
    "almost everything for validation": (_set("experiment", "val_fraction", 0.99), ConfigError,
                                         "experiment.val_fraction: 0.99 splits the 16 patches of 32 px"),
    "almost nothing for validation": (_set("experiment", "val_fraction", 0.001), ConfigError,
                                      "into 16 for training and 0 for validation"),
    "a folder given as the image": (_folder_as_image, ConfigError, "is a folder, not an image file"),
    "a missing label": (_set("data", "train", "label", lambda tmp: str(tmp / "nowhere.png")), ConfigError,
                        "nowhere.png does not exist"),
    "schema and cross-key problems at once": (_two_problems, ConfigError, "is not a multiple of 16\n  - data.classes: "
                                              "class name 'Buildings' appears more than once"),
    "a red class in an RGB palette that ignores red": (
        _set("data", "classes", 0, "color", [255, 0, 0]), ConfigError, "data.ignore_colors[0]: [255, 0, 0] is also a class colour"),
}


@pytest.mark.parametrize("name", list(BEFORE_ANY_JOB))
def test_caught_before_any_job(world, tmp_path, name):
    change, error, message = BEFORE_ANY_JOB[name]
    change(world, tmp_path)
    with pytest.raises(error) as caught:
        checked(world)
    assert message in str(caught.value)
    assert not (tmp_path / "results").exists()


def test_what_is_not_wrong_passes_the_checks(world, tmp_path, monkeypatch):
    """Cases that used to be refused although nothing is wrong with them."""
    index_labels = cfg.validate_keys({**world, "data": {**world["data"], "label_format": "index", "classes": [
        {"name": "a", "color": [255, 0, 0], "value": 1}, {"name": "b", "color": [0, 0, 255], "value": 2}]}})
    assert index_labels["data"]["ignore_colors"] == [[255, 0, 0]]  # kept, and harmless: index labels have no colours
    monkeypatch.chdir(tmp_path)
    dotted = cfg.validate({**world, "data": {**world["data"], "train": {"image": "./results/demo/train/image.png",
                                                                         "label": "results/demo/train/label.png"}}},
                          producible={"results/demo/train/image.png", "results/demo/train/label.png"})
    assert dotted["data"]["train"]["image"] == "results/demo/train/image.png"


# --- in a job -----------------------------------------------------------------------------


@dataclass
class JobRow:
    change: Callable[[dict, Path], None]
    job: str  # class_stats, patches, train or predict
    message: str  # in the job's log; "" when the job must succeed
    fails: bool = True


def _unknown_colour(config, tmp):
    label = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(tmp / "train_label.png")).copy()
    label[5:7, 9:12] = (12, 34, 56)
    write_png(tmp / "train_label.png", label)


def _truncated_image(config, tmp):
    truncate(tmp / "train.png")


def _nan_pixels(config, tmp):
    import tifffile

    pixels = np.random.default_rng(0).random((SIZE, SIZE, 3), dtype=np.float32)
    pixels[40, 17, 1] = np.nan
    pixels[41, 0, 0] = np.inf
    tifffile.imwrite(tmp / "train.tif", pixels, photometric="rgb")
    config["data"]["train"]["image"] = str(tmp / "train.tif")
    config["data"]["value_range"] = [0, 1]


def _missing_class(weighting):
    def change(config, tmp):
        config["data"]["classes"].append({"name": "Water", "color": [9, 9, 9]})
        config["train"]["weighting"] = weighting
    return change


def _huge_blocks(config, tmp):
    config["experiment"].update(split="blocks", block_size=512)


def _trapped_state(config, tmp):
    (tmp / "resume").mkdir()
    torch.save({"fingerprint": RunsCode(tmp / "marker")}, tmp / "resume" / "state.pt")


def _truncated_state(config, tmp):
    (tmp / "resume").mkdir()
    torch.save({"model": torch.zeros(1000)}, tmp / "resume" / "state.pt")
    truncate(tmp / "resume" / "state.pt")


def _trapped_model(config, tmp):
    torch.save({"spec": RunsCode(tmp / "marker"), "state_dict": {}}, tmp / "model.pt")


def _truncated_model(config, tmp):
    truncate(tmp / "model.pt", 0.3)


def _foreign_model(config, tmp):
    torch.save({"weights": torch.zeros(3)}, tmp / "model.pt")


IN_A_JOB = {
    "truncated image": JobRow(_truncated_image, "train", "train.png: cannot read image"),
    "unknown label colour": JobRow(_unknown_colour, "class_stats",
                                   "6 pixels have a colour that is neither in data.classes[].color nor in data.ignore_colors"),
    "NaN and infinite pixels": JobRow(_nan_pixels, "train", "train.tif: 2 no-data pixels, left out", fails=False),
    "a class without training pixels": JobRow(_missing_class("inverse"), "class_stats",
                                              "class(es) 'Water' have no pixels", True),
    "... with an unweighted loss": JobRow(_missing_class("none"), "class_stats",
                                          "class 'Water' has no pixels in the training image", fails=False),
    "blocks larger than the image": JobRow(_huge_blocks, "patches", "experiment.split 'blocks', 32 px patches: "),
    "a resume state that would run code": JobRow(_trapped_state, "train", "refused to load this resume state: it holds "
                                                 "objects other than tensors and plain data", fails=False),
    "a truncated resume state": JobRow(_truncated_state, "train", "cannot read this resume state: the file is "
                                       "truncated or corrupt", fails=False),
    "a checkpoint that would run code": JobRow(_trapped_model, "predict", "model.pt: refused to load this checkpoint"),
    "a truncated checkpoint": JobRow(_truncated_model, "predict", "model.pt: cannot read this checkpoint: the file is "
                                     "truncated or corrupt (RuntimeError); delete it and run the workflow again"),
    "a file that is not a checkpoint": JobRow(_foreign_model, "predict", "not a checkpoint written by aerialseg"),
}


def train_files(config: dict, tmp: Path, out: Path | None = None, resume: bool = True) -> training.TrainFiles:
    out = out or tmp
    return training.TrainFiles(
        tiles=cfg.tiles(config, "train"), patches=tmp / "p32.csv",
        weights=tmp / "weights.json", model=out / "model.pt", history=out / "history.csv", last=out / "last.pt",
        settings=out / "settings.yaml", resume=tmp / "resume" / "state.pt" if resume else None)


def prepare_training(config: dict, tmp: Path) -> None:
    """The class weights and patch index that a training job reads."""
    datasets.class_stats(config, labels(config), tmp / "stats.csv", tmp / "weights.json")
    datasets.patch_index(config, 32, train_images(config), tmp / "p32.csv")


def labels(config: dict) -> dict:
    return cfg.split_tiles(config)


def train_images(config: dict) -> dict:
    return {tile.name: tile.image for tile in cfg.tiles(config, "train")}


def run_job(job: str, config: dict, tmp: Path) -> int:
    """Run one job through `runner.execute`, logging to ``{job}.log``, its outputs in ``out/``.
    The earlier jobs' outputs that it reads are made first."""
    log = tmp / f"{job}.log"
    out = tmp / "out"
    if job == "class_stats":
        return runner.execute(datasets.class_stats, log, config, labels(config), out / "class_stats.csv", out / "class_weights.json")
    elif job == "patches":
        return runner.execute(datasets.patch_index, log, config, 32, train_images(config), out / "p32.csv")
    elif job == "train":
        prepare_training(config, tmp)
        return runner.execute(training.train_case, log, config, Run(Case("scratch", 32)), train_files(config, tmp, out))
    else:
        tiles = [prediction.TileFiles(config["data"][image]["image"], out / f"{image}_ids.png", out / f"{image}_color.png")
                 for image in ("train", "test")]
        return runner.execute(prediction.predict_images, log, config, tmp / "model.pt", tiles, threads=1)


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory) -> Path:
    """A real model.pt of the tiny study, trained once for the module."""
    folder = tmp_path_factory.mktemp("trained")
    config = cfg.validate(make_world(folder))
    prepare_training(config, folder)
    training.train_case(config, Run(Case("scratch", 32)), train_files(config, folder, resume=False))
    return folder / "model.pt"


@pytest.fixture
def trained(world, tmp_path, trained_model):
    """A copy of the real model.pt in this test's folder, for the predict rows to break."""
    shutil.copyfile(trained_model, tmp_path / "model.pt")
    return world


@pytest.mark.parametrize("name", list(IN_A_JOB))
def test_caught_in_its_job(world, tmp_path, name, request):
    row = IN_A_JOB[name]
    if row.job == "predict":
        request.getfixturevalue("trained")
    row.change(world, tmp_path)
    config = cfg.validate(world)
    assert run_job(row.job, config, tmp_path) == (runner.FAILED if row.fails else 0)
    text = (tmp_path / f"{row.job}.log").read_text()
    assert row.message in text and "Traceback" not in text
    assert not (tmp_path / "marker").exists(), "a file in results/ ran code"
    out = tmp_path / "out"
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    if row.fails:
        assert left == [], f"a failed {row.job} job left {left}"
    else:
        assert all(not name.endswith(".tmp") for name in left)
    if row.job == "train" and not row.fails and "state" in name:  # the bad state was discarded, the run started afresh
        assert "starting from epoch 1" in text and pd.read_csv(out / "history.csv").epoch.tolist() == [1]
        assert not (tmp_path / "resume" / "state.pt").exists()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 6 MiB filesystem: too small for a checkpoint (about 12 MB)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root): the full-disk row is not run")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_names_the_file_and_leaves_nothing_half_written(world, tmp_path, tiny_disk):
    config = cfg.validate(world)
    prepare_training(config, tmp_path)
    log = tmp_path / "train.log"
    assert runner.execute(training.train_case, log, config, Run(Case("scratch", 32)),
                      train_files(config, tmp_path, tiny_disk)) == runner.FAILED
    text = log.read_text()
    assert f"{tiny_disk}/last.pt: cannot write it: no space left on the disk" in text and "Traceback" not in text
    assert list(tiny_disk.iterdir()) == []
