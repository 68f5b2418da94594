"""The workflow as a user runs it: lint, dry runs, config errors and one end-to-end run."""

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "workflow" / "tiny.yaml"
CLASSES = ["Buildings", "Tree", "Low vegetation", "Car", "Impervious surfaces"]
PALETTE = np.array([[0, 0, 255], [0, 255, 0], [0, 255, 255], [255, 255, 0], [255, 255, 255]], np.uint8)  # their colours


def colors_in(png: Path) -> set[tuple[int, int, int]]:
    """The RGB colours of a PNG's pixels."""
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3).astype(np.int32)
    codes = np.unique(pixels[:, 0] << 16 | pixels[:, 1] << 8 | pixels[:, 2])
    return {(int(c) >> 16, int(c) >> 8 & 255, int(c) & 255) for c in codes}


def decode(label: np.ndarray) -> np.ndarray:
    """The class ids present in a colour label (clutter, which is ignored, left out)."""
    return np.array([i for i, color in enumerate(PALETTE) if np.all(label == color, axis=2).any()])


pytestmark = pytest.mark.workflow


def _without_slurm_probe() -> dict:
    """The environment of a Snakemake run that needs no Slurm cluster. Where Slurm's client tools
    are installed but no controller runs (this machine between Slurm tests), the Slurm executor
    plugin, which Snakemake imports at every start, asks `scontrol show config` for MinJobAge
    and waits 9 s for it; an `scontrol` that fails at once gives the plugin the answer it takes
    for "no cluster" (None), and the workflow runs as it would without Slurm installed."""
    import os
    import tempfile

    shims = Path(tempfile.gettempdir()) / "aerialseg-test-shims"
    shims.mkdir(exist_ok=True)
    scontrol = shims / "scontrol"
    if not scontrol.exists():
        scontrol.write_text("#!/bin/sh\nexit 1\n")
        scontrol.chmod(0o755)
    return {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ.get('PATH', '')}"}


def snakemake(*args, workdir: Path, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=_without_slurm_probe())
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_lint_is_clean(tmp_path):
    result = snakemake("--lint", workdir=tmp_path)
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_dry_run_of_the_study_lists_six_training_jobs(tmp_path):
    result = snakemake("-n", workdir=tmp_path)
    counts = job_counts(result.stdout)
    assert counts["train"] == 6
    assert counts["predict"] == 6  # one per case, both images
    assert counts["evaluate"] == 12
    assert counts["demo_scene"] == 2
    assert "train_repeat" not in counts  # one repeat: the study's jobs only


def test_each_repeat_is_its_own_set_of_jobs(tmp_path):
    repeats = tmp_path / "repeats.yaml"
    repeats.write_text("experiment:\n  repeats: 3\n")
    result = snakemake("-n", "--configfile", repeats, workdir=tmp_path).stdout
    counts = job_counts(result)
    assert (counts["train"], counts["predict"], counts["evaluate"]) == (18, 18, 36)  # one rule per step, every repeat
    assert counts["training_curves"] == 6  # drawn for the study's run
    assert "output: results/repeats/3/cases/scratch_p128/model.pt" in result
    assert "log: results/logs/repeats/3/train/scratch_p128.log" in result


def test_a_single_case_can_be_asked_for(tmp_path):
    result = snakemake("-n", "results/cases/scratch_p64/test/metrics.csv", workdir=tmp_path)
    counts = job_counts(result.stdout)
    assert counts["train"] == 1 and counts["predict"] == 1 and counts["patches"] == 1


def test_the_slurm_profile_gives_every_job_its_partition_memory_and_time(tmp_path):
    """A dry run through profiles/slurm as shipped: every job of every rule, repeats included,
    gets the partition, memory and runtime that the profile sets for its rule."""
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    every_rule = {line.split()[0] for line in snakemake("--list-rules", workdir=tmp_path).stdout.splitlines()
                  if line and not line.startswith(" ")} - {"all"}
    local = {name for text in map(Path.read_text, (ROOT / "rules").glob("*.smk"))  # run where Snakemake runs
             for name, body in re.findall(r"^(?:rule|checkpoint) (\w+):\n((?:    .*\n|\n)*)", text, re.M)
             if "    localrule: True" in body}
    assert local == {"preflight", "prediction_geotiff"}
    assert every_rule - local == set(profile["set-resources"]), "a rule without its own resources in the profile, or the reverse"
    output = snakemake("-n", "--workflow-profile", ROOT / "profiles/slurm", "--configfile", TINY, workdir=tmp_path).stdout
    jobs = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", output, re.M)
    assert len([r for r, _ in jobs if r == "train"]) == 4  # two cases, two repeats
    for rule, line in jobs:
        if rule == "all":
            continue
        resources = dict(item.split("=", 1) for item in line.split(", "))
        wanted = {**profile["default-resources"], **profile["set-resources"][rule]}
        partition = "gpu" if rule in ("train", "predict", "calibrate", "map_geotiff", "map_png", "map_block") else "cpu"
        assert (resources["slurm_partition"], resources["mem_mb"], resources["runtime"]) == (
            partition, str(wanted["mem_mb"]), str(wanted["runtime"])), rule
        assert ("gpu" in resources) == (partition == "gpu"), rule


@pytest.mark.parametrize(
    "override, message",
    [
        ("experiment:\n  patch_sizes: [30]\n", "experiment.patch_sizes[0]: 30 is not a multiple of 16"),
        ("data:\n  train:\n    image: /no/such/image.tif\n    label: results/demo/train/label.png\n",
         "data.train.image: file /no/such/image.tif does not exist"),
    ],
)
def test_a_bad_config_stops_before_any_job(tmp_path, override, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(override)
    result = snakemake("--configfile", bad, "--cores", "1", workdir=tmp_path, check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "results").exists()


def test_a_bad_input_file_stops_the_first_job_before_any_other_runs(tmp_path):
    from aerialseg import demo
    from aerialseg.io.write import write_png

    for seed, split in enumerate(("train", "test")):
        pixels, label = demo.render_scene(128, seed=seed)
        write_png(tmp_path / f"{split}.png", pixels)
        write_png(tmp_path / f"{split}_label.png", label[:96] if split == "train" else label)  # a label too short
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n" + "".join(f"  {s}: {{image: {tmp_path}/{s}.png, label: {tmp_path}/{s}_label.png}}\n"
                                       for s in ("train", "test")))
    result = snakemake("--configfile", TINY, bad, "--cores", "4", workdir=tmp_path, check=False)
    assert result.returncode != 0 and "Error in rule preflight" in result.stderr
    assert "train_label.png: label is 128 x 96 px but image" in result.stderr
    assert sorted(p.name for p in (tmp_path / "results").rglob("*") if p.is_file()) == ["preflight.log"]


def test_georeferenced_images_get_geotiff_predictions(tmp_path):
    from rasterio.transform import Affine

    from aerialseg.io.write import write_png
    from tests.test_pipeline import UTM_40N, write_geotiff

    rng = np.random.default_rng(0)
    label = np.array([[0, 0, 255], [0, 255, 0]], np.uint8)[rng.integers(0, 2, (64, 64))]
    for name, array in (("image", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), ("label", label)):
        write_geotiff(tmp_path / f"{name}.tif", array, UTM_40N, Affine(0.5, 0, 305000, 0, -0.5, 2790000))
    write_png(tmp_path / "photo.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))  # not georeferenced
    config = tmp_path / "geo.yaml"
    config.write_text(
        "data:\n"
        + "".join(f"  {image}: {{image: {tmp_path}/image.tif, label: {tmp_path}/label.tif}}\n" for image in ("train", "test"))
        + "  classes: [{name: a, color: [0, 0, 255]}, {name: b, color: [0, 255, 0]}]\n"
        + f"  predict: [{tmp_path}/image.tif, {tmp_path}/photo.png]\n"
        + "experiment: {patch_sizes: [32]}\n"
        + "predict: {cases: [scratch_p32]}\n"
    )
    planned = snakemake("-n", "--configfile", config, workdir=tmp_path).stdout
    assert "prediction.tif" not in planned and "preflight" in planned  # known once the pre-flight job has run
    snakemake("results/data/preflight.json", "--cores", "1", "--configfile", config, workdir=tmp_path)
    planned = snakemake("-n", "--configfile", config, workdir=tmp_path).stdout
    for image in ("train", "test"):
        assert f"results/cases/scratch_p32/{image}/prediction.tif" in planned
        assert f"results/cases/scratch_p32/{image}/prediction.qml" in planned  # its QGIS style
        assert f"results/cases/scratch_p32/{image}/prediction_confidence.tif" in planned
    assert "results/maps/scratch_p32/image.tif" in planned and "results/maps/scratch_p32/image.qml" in planned
    # each map by the rule of its format, with its preview: a PNG of class ids for the image without georeference
    made = dict(re.findall(r"^rule (map_geotiff|map_png):\n    input: .*\n    output: ([^\n]*)$", planned, re.M))
    assert made["map_geotiff"].startswith("results/maps/scratch_p32/image.tif, results/maps/scratch_p32/image_preview.png")
    assert made["map_png"].startswith("results/maps/scratch_p32/photo.png, results/maps/scratch_p32/photo_preview.png")
    # maps of data.predict: each with its confidence raster, and what predict.probabilities and
    # predict.confidence_threshold add; polygons read the confidence raster beside their map
    maps = tmp_path / "maps.yaml"
    maps.write_text(f"data: {{predict: [{tmp_path}/image.tif]}}\n"
                    "predict: {cases: [scratch_p32], vectors: true, probabilities: true, confidence_threshold: 0.6}\n")
    snakemake("results/data/preflight.json", "--cores", "1", "--configfile", config, maps, workdir=tmp_path)
    planned = snakemake("-n", "--configfile", config, maps, workdir=tmp_path).stdout
    for name in ("image.tif", "image_confidence.tif", "image_probabilities.tif", "image_masked.tif", "image.gpkg"):
        assert f"results/maps/scratch_p32/{name}" in planned, name
    assert "results/cases/scratch_p32/test/prediction_confidence.tif" in planned


DUBAI = ROOT.parent / "shared" / "data" / "dubai-tile8"


@pytest.mark.skipif(not DUBAI.is_dir(), reason=f"real imagery not found at {DUBAI}")
def test_class_stats_of_the_dubai_pair(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dubai").symlink_to(DUBAI)
    snakemake("--configfile", ROOT / "config" / "dubai.yaml", "--cores", "1", "results/data/class_stats.csv", workdir=tmp_path)
    table = pd.read_csv(tmp_path / "results/data/class_stats.csv")
    assert table["class"].unique().tolist() == ["Building", "Land", "Road", "Vegetation", "Water"]
    assert table.groupby("image").share.sum().to_dict() == pytest.approx({"train": 100.0, "test": 100.0})
    assert not (tmp_path / "results" / "demo").exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One run of the tiny study (two cases, one epoch), shared by the tests below."""
    workdir = tmp_path_factory.mktemp("tiny")
    snakemake("--configfile", TINY, "--cores", "2", workdir=workdir)
    return workdir


def test_end_to_end_tiny_study(tiny_run):
    results = tiny_run / "results"
    cases = ["imagenet_p32", "scratch_p32"]

    stats = pd.read_csv(results / "data/class_stats.csv")
    assert list(stats.columns) == ["image", "class", "pixels", "share"]
    for image in ("train", "test"):
        shares = stats[stats.image == image]
        assert shares["class"].tolist() == CLASSES
        assert shares.share.sum() == pytest.approx(100.0)
    weights = json.loads((results / "data/class_weights.json").read_text())
    train = stats[stats.image == "train"].set_index("class").pixels
    for name in CLASSES:
        assert weights[name] == pytest.approx(train.sum() / train[name])

    index = pd.read_csv(results / "patches/p32.csv")
    assert list(index.columns) == ["row", "col", "split"]
    assert (index.split == "val").mean() == pytest.approx(0.2, abs=0.03)

    label = np.asarray(Image.open(results / "demo/test/label.png"))
    class_stats_log = (results / "logs/class_stats.log").read_text()
    for case in cases:
        history = pd.read_csv(results / f"cases/{case}/history.csv")
        # the contract's columns, then what a step or pixel budget needs (issue 21)
        assert list(history.columns) == [
            "epoch", "train_loss", "train_acc", "train_miou", "val_loss", "val_acc", "val_miou", "seconds",
            "steps", "pixels", "partial"]
        assert history.epoch.tolist() == [1]
        assert history.steps.tolist() == [(index.split == "train").sum() // 8]  # full batches of 8
        assert history.pixels.tolist() == [history.steps[0] * 8 * 32 * 32] and not history.partial.any()
        assert history.train_loss.gt(0).all() and history.val_acc.between(0, 1).all()
        for kind in ("model", "last"):  # the kept and the last epoch's model of this case, with what made them
            checkpoint = torch.load(results / f"cases/{case}/{kind}.pt", map_location="cpu", weights_only=True)
            assert (checkpoint["case"], checkpoint["patch_size"], checkpoint["epoch"]) == (case, 32, 1)
            assert checkpoint["spec"]["init"] == case.split("_")[0] and checkpoint["spec"]["n_classes"] == len(CLASSES)
            assert [c["name"] for c in checkpoint["data"]["classes"]] == CLASSES
        assert not (results / f"resume/{case}/state.pt").exists()  # removed once the outputs exist
        for image in ("train", "test"):
            folder = results / f"cases/{case}/{image}"
            ids = np.asarray(Image.open(folder / "prediction.png"))
            assert ids.shape == label.shape[:2] and ids.max() < len(CLASSES)
            color = np.asarray(Image.open(folder / "prediction_color.png"))
            assert color.shape == label.shape
            metrics = pd.read_csv(folder / "metrics.csv")
            assert list(metrics.columns) == ["class", "precision", "recall", "f1", "iou", "support"]
            assert metrics["class"].tolist() == CLASSES
            confusion = pd.read_csv(folder / "confusion.csv", index_col=0)
            assert confusion.index.tolist() == CLASSES == confusion.columns.tolist()
            assert metrics.support.tolist() == confusion.sum(axis=1).tolist()
            # every labelled pixel is counted once: the demo labels clutter red, which is ignored
            image_label = np.asarray(Image.open(results / f"demo/{image}/label.png"))
            ignored = np.all(image_label == (255, 0, 0), axis=2).sum()
            assert confusion.to_numpy().sum() == ids.size - ignored
            assert f"{image} image: {ids.size - ignored} labelled pixels, {ignored} ignored" in class_stats_log
            np.testing.assert_array_equal(color, PALETTE[ids])  # the class ids in the classes' colours
            shown = colors_in(results / f"cases/{case}/{image}/mosaic.png")
            # the panels: every class of the truth and of the prediction in its colour, errors in red
            assert set(map(tuple, PALETTE[np.unique(ids)])) <= shown
            assert set(map(tuple, PALETTE[decode(image_label)])) <= shown
            assert ((230, 30, 30) in shown) == bool(np.trace(confusion.to_numpy()) < confusion.to_numpy().sum())
        # both curves of training_curves.png are drawn: the train and the validation colour
        assert {(0x4C, 0x72, 0xB0), (0xDD, 0x84, 0x52)} <= colors_in(results / f"cases/{case}/training_curves.png")

    # the second repeat: the same files beside the first, with the next seed
    for case in cases:
        repeat, first = results / f"repeats/2/cases/{case}", results / f"cases/{case}"
        checkpoint = torch.load(repeat / "model.pt", map_location="cpu", weights_only=True)
        assert checkpoint["case"] == case and checkpoint["epoch"] == 1
        confusions = [pd.read_csv(run / "test/confusion.csv", index_col=0) for run in (first, repeat)]
        assert confusions[1].to_numpy().sum() == confusions[0].to_numpy().sum()  # the same pixels, scored again
        shape = [np.asarray(Image.open(run / "test/mosaic.png")).shape for run in (first, repeat)]
        assert shape[0] == shape[1]
        histories = [pd.read_csv(run / "history.csv") for run in (first, repeat)]
        assert histories[0].train_loss[0] != histories[1].train_loss[0]  # another seed, another run

    # each run says what made it; the tables name the fingerprint of all the settings
    record = yaml.safe_load((results / "repeats/2/cases/scratch_p32/settings.yaml").read_text())
    assert (record["case"], record["repeat"], record["seed"]) == ("scratch_p32", 2, 43)
    assert record["settings"]["train"]["epochs"] == 1 and record["settings"]["experiment"]["stride"] == 32
    assert "device" not in record["settings"]["train"]  # how it ran is not what made it
    summary = yaml.safe_load((results / "summary/settings.yaml").read_text())
    assert summary["settings"]["predict"] == {"stride": 16, "blend": "mean", "tta": False, "vectors": False, "min_area": 0,
                                              "precision": "auto", "memory_format": "auto", "probabilities": False,
                                              "confidence_threshold": None, "temperature_scaling": True}
    for table in ("training.md", "evaluation.md", "study_tables.md"):
        assert (results / "summary" / table).read_text().rstrip().endswith(
            f"Settings {summary['fingerprint']}: every setting that shaped these results is in results/summary/settings.yaml.")
    runs = pd.read_csv(results / "summary/runs.csv")
    assert len(runs) == 2 * 2 * 2 and sorted(runs.seed.unique()) == [42, 43]
    assert set(runs.columns) >= {"case", "repeat", "seed", "image", "miou", "f1", "val_miou", "train_seconds"}

    training = pd.read_csv(results / "summary/training.csv")
    assert training.case.tolist() == cases
    assert (training.repeats == 2).all() and training.val_miou_sd.notna().all()
    for case, part in runs[runs.image == "test"].groupby("case"):
        row = training[training.case == case].iloc[0]
        assert row.val_miou == pytest.approx(part.val_miou.mean()) and row.val_miou_sd == pytest.approx(part.val_miou.std())
    for column in ["case", "init", "patch_size", "train_acc", "train_loss", "train_miou",
                   "val_acc", "val_loss", "val_miou", "train_seconds"]:
        assert column in training.columns
    assert training.train_seconds.gt(0).all()
    evaluation = pd.read_csv(results / "summary/evaluation.csv")
    assert len(evaluation) == 4
    for column in ["case", "init", "patch_size", "image", "precision", "recall", "f1", "f1_macro", "miou", "overall_accuracy"]:
        assert column in evaluation.columns
    for _, row in evaluation.iterrows():
        assert 0 < row.overall_accuracy <= 1 and 0 <= row.miou <= 1 and not math.isnan(row.f1)
    assert (results / "summary/training.md").read_text().startswith("| case")
    assert (results / "summary/evaluation.md").read_text().startswith("| case")
    per_class = pd.read_csv(results / "summary/per_class.csv")
    assert len(per_class) == 4 * len(CLASSES)
    study = (results / "summary/study_tables.md").read_text()
    assert all(f"Table {n}:" in study for n in (1, 2, 3)) and "| 1a " in study and "| 2a " in study
    conclusions = (results / "summary/conclusions.md").read_text()
    assert conclusions.count("**Verdict: ") == 3 and "2 runs per case (seeds 42, 43)" in conclusions
    for image in ("train", "test"):  # the heatmaps of both cases, on the Blues scale, and the colour bar
        figure = np.asarray(Image.open(results / f"summary/confusion_{image}.png"))
        assert figure.shape[1] > figure.shape[0] and len(colors_in(results / f"summary/confusion_{image}.png")) > 50
    # a line per init in its colour (imagenet blue, scratch orange)
    assert {(0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)} <= colors_in(results / "summary/metrics_vs_patch_size.png")
    # confidence and calibration (issue 29): a confidence raster per tile, the test ECE in the tables
    for case in cases:
        for image in ("train", "test"):
            assert (results / f"cases/{case}/{image}/prediction_confidence.tif").is_file()
        calibration = pd.read_csv(results / f"cases/{case}/calibration.csv").iloc[0]
        assert 0.05 <= calibration["temperature"] <= 20 and 0 <= calibration["ece"] <= 1
        scored = runs[(runs.case == case) & (runs.repeat == 1) & (runs.image == "test")].iloc[0]
        assert calibration["accuracy"] == pytest.approx(scored.overall_accuracy)  # the map's own classes, counted
        assert calibration["ece"] == pytest.approx(scored.ece)
        assert (results / f"summary/reliability_{case}.png").is_file()
    assert evaluation[evaluation.image == "train"].ece.isna().all() and evaluation[evaluation.image == "test"].ece.between(0, 1).all()
    assert evaluation.ece_sd.notna().sum() == 2 and runs[runs.image == "test"].ece.notna().all()
    assert "lowered the test ECE in" in (results / "summary/calibration.md").read_text()
    for log, says in [("train/imagenet_p32.log", "kept epoch 1 of 1 (best validation mIoU)"),
                      ("predict/scratch_p32.log", "predicted 2 image(s) in all"),
                      ("repeats/2/train/scratch_p32.log", "case scratch_p32, repeat 2 (seed 43)")]:
        assert says in (results / "logs" / log).read_text(), log


def dry_run_plan(workdir: Path, *overrides: str) -> tuple[dict[str, int], dict[str, set[str]]]:
    """The jobs a dry run of the tiny study would run with ``overrides`` (YAML) merged over
    it, and Snakemake's summary of why: {reason: rules}."""
    files = []
    for i, text in enumerate(t for t in overrides if t):
        files.append(workdir / f"override{i}.yaml")
        files[-1].write_text(text)
    output = snakemake("-n", "--configfile", TINY, *files, workdir=workdir).stdout
    if "Nothing to be done" in output:
        return {}, {}
    reasons = {}
    block = output.split("Reasons:")[1].split("This was a dry-run")[0]
    for reason, rules in re.findall(r"^    (\w[^\n]*):\n        ([^\n]+)", block, re.M):
        reasons[reason] = set(rules.split(", "))
    counts = job_counts(output)
    counts.pop("total")
    return counts, reasons


AFTER_TRAINING = {"predict": 4, "calibrate": 4, "evaluate": 8, "confusion_figure": 2, "reliability_figure": 2,
                  "summary": 1, "conclusions": 1, "summary_figure": 1, "all": 1}


@pytest.mark.parametrize("change, jobs, params_changed", [
    ("", {}, set()),
    ("train: {threads: 1, resume_seconds: 0, device: cpu}\npredict: {batch_size: 7, threads: 1}\n", {}, set()),
    ("experiment: {block_size: 64}\npredict: {min_area: 10}\ndata: {ignore_values: [7]}\n", {}, set()),
    ("train: {epochs: 2}\n", {"train": 4, "training_curves": 2, "learning_figure": 1, **AFTER_TRAINING}, {"train"}),
    # predict reads the blend too, but reruns first for its input: the run's new calibration.csv
    ("predict: {blend: gaussian}\n", AFTER_TRAINING, {"calibrate"}),
    # the pre-flight checks read experiment.stride (the validation split) and the demo scene
    ("experiment: {stride: 16}\n", {"preflight": 1, "patches": 1, "train": 4, "training_curves": 2,
                                    "learning_figure": 1, **AFTER_TRAINING}, {"preflight", "patches"}),
    ("demo: {size: 256}\n", {"demo_scene": 2, "preflight": 1, "class_stats": 1, "patches": 1, "train": 4,
                             "training_curves": 2, "learning_figure": 1, **AFTER_TRAINING}, {"demo_scene"}),
    ("figures: {metrics: [miou]}\n", {"summary_figure": 1, "all": 1}, {"summary_figure"}),
], ids=["unchanged", "how jobs run", "inert settings", "train.epochs", "predict.blend", "experiment.stride", "demo.size",
        "a figure's look"])
def test_a_changed_setting_reruns_exactly_the_jobs_it_affects(tiny_run, change, jobs, params_changed):
    """Snakemake names "params changed" where a change enters (the first jobs that read it);
    the jobs after them rerun because their inputs will be new."""
    counts, reasons = dry_run_plan(tiny_run, change)
    assert counts == jobs
    assert reasons.get("params have changed since last execution", set()) == params_changed
    assert "software environment" not in " ".join(reasons) and "code has changed" not in " ".join(reasons)


REPORT_FILES = [
    "class_stats.csv", "training_curves.png", "mosaic.png", "confusion_train.png", "confusion_test.png",
    "metrics_vs_patch_size.png", "learning_curves.png", "training.csv", "evaluation.csv", "per_class.csv", "runs.csv",
    "conclusions.html", "reliability_imagenet_p32.png", "reliability_scratch_p32.png", "calibration.csv",
]


@pytest.fixture(scope="module")
def report(tiny_run) -> Path:
    path = tiny_run / "results" / "report.html"
    snakemake("--configfile", TINY, "--report", path, workdir=tiny_run)
    return path


def test_report_holds_every_figure_and_table_with_captions(report):
    html = report.read_text()
    for name in REPORT_FILES:
        assert name in html, name
    for caption in ["Row-normalised confusion matrices", "the study's Table 2", "the study's Table 3",
                    "Training curves of case", "Panels: image, ground truth", "each checked", "Every single training run",
                    "Reliability diagram of case", "expected calibration error"]:
        assert caption in html, caption


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000", "--virtual-time-budget=15000",
         f"--screenshot={screenshot}", report.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    pixels = np.asarray(Image.open(screenshot).convert("L"), dtype=float)
    assert pixels.shape == (1000, 1400)
    # the rendered app (menu, workflow graph, text) is far from a blank page
    assert pixels.std() > 10 and (pixels < 100).mean() > 0.002


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_figure_pages_show_their_figures(report, tiny_run, tmp_path):
    """Click through the report as a reader would, to a mosaic and to the confusion matrices;
    the screenshot of each page must show that figure (compared with the PNG, pixel by pixel)."""
    sync_playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").sync_playwright
    results = tiny_run / "results"
    pages = [
        (["3. Mosaics", "test image"], "results/cases/imagenet_p32", results / "cases/imagenet_p32/test/mosaic.png"),
        (["4. Comparison", "confusion matrices"], "test", results / "summary/confusion_test.png"),
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for menu, row, figure in pages:
            page.goto(report.as_uri())
            for entry in menu:
                page.get_by_text(entry, exact=True).click()
            page.locator("tr", has_text=row).locator("a").first.click()  # the eye: show this result
            expected = Image.open(figure).convert("RGB")
            page.wait_for_function("w => [...document.images].some(i => i.naturalWidth === w && i.width > 300)",
                                   arg=expected.width)
            box = page.evaluate("w => { const r = [...document.images].find(i => i.naturalWidth === w)"
                                ".getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }", expected.width)
            screenshot = tmp_path / f"{figure.stem}.png"
            page.screenshot(path=screenshot)
            x, y, width, height = (round(v) for v in box)
            seen = np.asarray(Image.open(screenshot).convert("RGB").crop((x, y, x + width, y + height)), dtype=float)
            want = np.asarray(expected.resize((width, height), Image.Resampling.BILINEAR), dtype=float)
            assert width > 300 and seen.std() > 20, f"{figure.name}: nothing shown"
            assert np.abs(seen - want).mean() < 12, f"{figure.name}: the page does not show the figure"
        browser.close()

