"""Tests for aerialseg.figures: shapes of figures, colour mapping, atomic PNG saving."""

import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.image import imread

from aerialseg.figures import (
    confusion_grid,
    metric_vs_patch_size,
    mosaic_panel,
    save,
    training_curves,
)

CLASSES = [
    ("Buildings", (0, 0, 255)),
    ("Tree", (0, 255, 0)),
    ("Low vegetation", (0, 255, 255)),
    ("Car", (255, 255, 0)),
    ("Impervious surfaces", (255, 255, 255)),
]
NAMES = [name for name, _ in CLASSES]
CASES = [f"{init}_p{size}" for init in ("imagenet", "scratch") for size in (32, 64, 128)]


def _history(epochs: int) -> pd.DataFrame:
    e = np.arange(1, epochs + 1)
    return pd.DataFrame({
        "epoch": e, "train_loss": 1.0 / e, "train_acc": 1 - 0.5 / e, "train_miou": 1 - 0.6 / e,
        "val_loss": 1.1 / e, "val_acc": 1 - 0.55 / e, "val_miou": 1 - 0.7 / e, "seconds": 10.0 * e,
    })


def _evaluation() -> pd.DataFrame:
    rows = []
    for init in ("imagenet", "scratch"):
        for size in (32, 64, 128):
            for image in ("train", "test"):
                v = 0.5 + size / 1000 + (0.1 if init == "imagenet" else 0) + (0.05 if image == "train" else 0)
                rows.append({"case": f"{init}_p{size}", "init": init, "patch_size": size, "image": image,
                             "precision": v, "recall": v, "f1": v, "f1_macro": v, "miou": v - 0.1,
                             "overall_accuracy": v + 0.1})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("epochs", [1, 5])
def test_training_curves_show_each_score_per_epoch_and_the_kept_epoch(epochs):
    history = _history(epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = training_curves(history, "imagenet_p64: training curves")
    assert fig._suptitle.get_text() == "imagenet_p64: training curves"
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy", "mIoU"]
    assert all(ax.get_xlabel() == "epoch" for ax in fig.axes)
    for ax, metric in zip(fig.axes, ["loss", "acc", "miou"]):  # each score of each epoch, train and validation
        lines = {line.get_label(): line for line in ax.lines}
        for label, split in (("train", "train"), ("validation", "val")):
            np.testing.assert_allclose(lines[label].get_xdata(), history.epoch)
            np.testing.assert_allclose(lines[label].get_ydata(), history[f"{split}_{metric}"])
    star = [line for line in fig.axes[2].lines if line.get_label().startswith("best val")]
    assert len(star) == 1 and star[0].get_xdata()[0] == epochs  # val mIoU rises every epoch: the last is kept
    assert star[0].get_label() == f"best val {history.val_miou.iloc[-1]:.3f}"


def test_mosaic_panel_shows_the_classes_in_their_colours_and_the_errors():
    image = np.full((40, 60, 3), 100, dtype=np.uint8)
    truth = np.ones((40, 60), dtype=np.int64)  # Tree
    truth[:5] = 255  # ignored
    prediction = np.ones((40, 60), dtype=np.int64)
    prediction[20:, :] = 0  # Buildings where the truth is Tree: an error
    fig = mosaic_panel(image, truth, prediction, CLASSES, "imagenet_p64 mIoU 0.5")
    assert [ax.get_title() for ax in fig.axes] == ["image", "ground truth", "prediction", "errors"]
    shown = [ax.get_images()[0].get_array() for ax in fig.axes]
    assert tuple(shown[1][10, 10]) == (0, 255, 0) and tuple(shown[2][30, 10]) == (0, 0, 255)
    assert tuple(shown[3][0, 0]) == (0, 0, 0)  # ignored: black
    assert tuple(shown[3][30, 10]) == (230, 30, 30) and tuple(shown[3][10, 10]) != (230, 30, 30)  # red where wrong
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert legend == NAMES + ["correct", "error", "ignored"]


def test_mosaic_panel_downsamples_large_input():
    """Every third pixel (3000 / 1024 rounds up to 3), nearest neighbour: the panels show the
    input's own values at those pixels, not a blur of them."""
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (3000, 2400, 3), dtype=np.uint8)
    truth = rng.integers(0, len(CLASSES), (3000, 2400))
    prediction = truth.copy()
    prediction[::2] = (prediction[::2] + 1) % len(CLASSES)  # wrong on every other row
    fig = mosaic_panel(image, truth, prediction, CLASSES, "big")
    shown = [np.asarray(ax.get_images()[0].get_array()) for ax in fig.axes]
    assert all(panel.shape[:2] == (1000, 800) for panel in shown)
    colors = np.array([rgb for _, rgb in CLASSES], np.uint8)
    np.testing.assert_array_equal(shown[0], image[::3, ::3])
    np.testing.assert_array_equal(shown[1], colors[truth[::3, ::3]])
    np.testing.assert_array_equal(shown[2], colors[prediction[::3, ::3]])
    wrong = np.all(shown[3] == (230, 30, 30), axis=2)
    np.testing.assert_array_equal(wrong, (truth != prediction)[::3, ::3])  # rows 0, 6, 12, ... of the input


def test_confusion_grid_zero_row_no_warning():
    rng = np.random.default_rng(1)
    confusions = {}
    for case in CASES:
        m = rng.integers(0, 100, (5, 5))
        m[3] = 0  # class without support
        confusions[case] = m
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = confusion_grid(confusions, NAMES, "Confusion (test)")
    assert len(fig.axes) == len(CASES) + 1  # a heatmap per case and the shared colour bar
    assert [ax.get_title() for ax in fig.axes[: len(CASES)]] == CASES
    for ax, case in zip(fig.axes, CASES):
        counts = confusions[case].astype(float)
        heat = np.ma.filled(np.ma.masked_invalid(ax.collections[0].get_array()).astype(float), np.nan).reshape(5, 5)
        assert np.isnan(heat[3]).all() and not np.isnan(np.delete(heat, 3, axis=0)).any()  # only the empty row is blank
        keep = [0, 1, 2, 4]
        np.testing.assert_allclose(heat[keep], counts[keep] / counts[keep].sum(axis=1, keepdims=True))
        assert "no pixels of this class" in [text.get_text() for text in ax.texts]


def test_confusion_grid_of_one_case_is_row_normalised():
    fig = confusion_grid({"a": np.array([[3, 1], [0, 2]])}, ["x", "y"], "one")
    heatmaps = [ax for ax in fig.axes if ax.get_title() == "a"]
    assert len(heatmaps) == 1 and len(fig.axes) == 2  # the heatmap and its colour bar
    values = np.asarray(heatmaps[0].collections[0].get_array(), dtype=float).reshape(2, 2)
    np.testing.assert_allclose(values, [[0.75, 0.25], [0.0, 1.0]])
    assert fig._suptitle.get_text() == "one"


def test_metric_vs_patch_size_draws_each_init_and_image_against_the_sizes():
    evaluation = _evaluation()
    fig = metric_vs_patch_size(evaluation)
    assert [ax.get_title() for ax in fig.axes] == ["mIoU", "F1", "overall accuracy"]
    assert all(len(ax.lines) == 4 for ax in fig.axes)  # 2 inits x 2 images
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["32", "64", "128"]
    colors = {"imagenet": "#1f77b4", "scratch": "#ff7f0e"}
    for ax, metric in zip(fig.axes, ["miou", "f1", "overall_accuracy"]):
        drawn = {(to_hex(line.get_color()), line.get_linestyle()): (list(line.get_xdata()), list(line.get_ydata()))
                 for line in ax.lines}
        for (init, image), part in evaluation.groupby(["init", "image"]):  # colour = init, line style = image
            sizes, values = drawn.pop((colors[init], {"test": "-", "train": "--"}[image]))
            assert sizes == [32, 64, 128]
            np.testing.assert_allclose(values, part.sort_values("patch_size")[metric])
        assert drawn == {}
    assert [ax.get_title() for ax in metric_vs_patch_size(evaluation, metrics=("miou",)).axes] == ["mIoU"]


def test_metric_vs_patch_size_draws_the_spread_between_repeats():
    evaluation = _evaluation()
    evaluation["miou_sd"] = 0.05
    ax = metric_vs_patch_size(evaluation, metrics=("miou",)).axes[0]
    bars = [c for c in ax.collections if c.get_segments()]  # one vertical bar per point
    assert sum(len(c.get_segments()) for c in bars) == len(evaluation)
    segment = bars[0].get_segments()[0]
    assert segment[1][1] - segment[0][1] == pytest.approx(0.1)  # mean +- one sd
    plain = metric_vs_patch_size(_evaluation(), metrics=("miou",)).axes[0]
    assert not [c for c in plain.collections if c.get_segments()]


def test_save_writes_png(tmp_path):
    fig = training_curves(_history(3), "t")
    out = tmp_path / "sub" / "dir" / "curves.png"
    save(fig, out)
    pixels = imread(out)
    height, width = pixels.shape[:2]
    assert width > height  # three panels side by side
    w_in, h_in = fig.get_size_inches()
    assert (height, width) == (round(h_in * 120), round(w_in * 120))
    # the file holds the figure as drawn at 120 dpi, pixel for pixel
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(120)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    drawn = np.asarray(canvas.buffer_rgba())
    np.testing.assert_array_equal(np.round(pixels * 255).astype(np.uint8), drawn)
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]  # no temp left behind


@pytest.mark.parametrize("n_cases", [1, 2, 3, 6])
def test_confusion_grid_labels_stay_inside_the_figure(n_cases):
    """Square heatmaps once pushed the x-axis label below the bottom edge (seen in the report)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    names = ["Buildings", "Tree", "Low vegetation", "Car", "Impervious surfaces"]
    rng = np.random.default_rng(0)
    fig = confusion_grid({f"case{i}": rng.integers(0, 100, (5, 5)) for i in range(n_cases)}, names, "t")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    for ax in fig.axes:
        box = ax.get_tightbbox(canvas.get_renderer())
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height



def test_learning_curves_draw_every_run_against_steps_and_pixels():
    from aerialseg.config import Case, Run
    from aerialseg.figures import learning_curves

    histories = {}
    for repeat in (1, 2):
        for size, per_epoch in ((32, 10), (128, 3)):
            history = _history(4)
            steps = per_epoch * history.epoch
            histories[Run(Case("scratch", size), repeat)] = history.assign(steps=steps, pixels=steps * 8 * size * size)
    fig = learning_curves(histories)
    by_steps, by_pixels = fig.axes
    assert by_steps.get_xlabel() == "optimiser steps" and by_pixels.get_xscale() == "log"
    assert len(by_steps.lines) == len(by_pixels.lines) == 4  # every run, repeats included
    big = histories[Run(Case("scratch", 128), 1)]
    line = next(line for line in by_pixels.lines if line.get_label() == "scratch_p128")
    np.testing.assert_allclose(line.get_xdata(), big.pixels / 1e6)  # what each run saw, in megapixels
    np.testing.assert_allclose(line.get_ydata(), big.val_miou)
    assert [t.get_text() for t in by_steps.get_legend().get_texts()] == ["scratch_p32", "scratch_p128"]  # by size
