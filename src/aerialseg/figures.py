"""Figures for comparing the training cases (``{init}_p{size}``) at a glance.

Every plotting function builds a fresh :class:`matplotlib.figure.Figure` directly (no
``pyplot`` global state, no backend selection), so it is thread-safe and works headless.
Nothing is shown; write a figure with :func:`save`.

Colours are consistent across figures: ImageNet initialisation is blue, scratch is orange;
in :func:`metric_vs_patch_size` solid lines are the test image and dashed lines the train
image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .files import atomic_path

if TYPE_CHECKING:
    from .calibration import ReliabilityCounts
    from .config import Run
from .calibration import bin_edges
from .class_ids import IGNORE_INDEX
from .io.write import colorize
from .metrics import best_index

ClassSpec = Sequence[tuple[str, tuple[int, int, int]]]

INIT_COLORS = {"imagenet": "#1f77b4", "scratch": "#ff7f0e"}
IMAGE_STYLES = {"test": "-", "train": "--"}
TRAIN_COLOR, VAL_COLOR = "#4c72b0", "#dd8452"
ERROR_RGB = (230, 30, 30)
MAX_DISPLAY_PX = 1024
DPI = 120
CASE_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf")  # matplotlib's tab10, one colour per case in the order given
METRIC_LABELS = {"miou": "mIoU", "f1": "F1", "f1_macro": "macro F1", "precision": "precision",
                 "recall": "recall", "overall_accuracy": "overall accuracy"}


def training_curves(history: pd.DataFrame, title: str) -> Figure:
    """Loss, accuracy and mIoU per epoch, train vs validation, in three side-by-side panels."""
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    history = history.sort_values("epoch")
    epochs = history["epoch"].to_numpy()
    for ax, (metric, label) in zip(axes, [("loss", "loss"), ("acc", "accuracy"), ("miou", "mIoU")]):
        for split, name, color in [("train", "train", TRAIN_COLOR), ("val", "validation", VAL_COLOR)]:
            column = f"{split}_{metric}"
            if column in history:
                ax.plot(epochs, history[column].to_numpy(dtype=float), marker="o", markersize=4,
                        color=color, label=name)
        if metric == "miou" and "val_miou" in history and history["val_miou"].notna().any():
            best = best_index(history["val_miou"].to_numpy(dtype=float))  # the kept epoch
            ax.plot(epochs[best], history["val_miou"].iloc[best], marker="*", markersize=14,
                    color=VAL_COLOR, markeredgecolor="black", linestyle="none",
                    label=f"best val {history['val_miou'].iloc[best]:.3f}")
        if metric == "loss":
            ax.set_ylim(bottom=0)
        else:
            ax.set_ylim(0, 1)
        if len(epochs) == 1:
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title, fontweight="bold")
    return fig


def _downsample(array: np.ndarray, max_side: int = MAX_DISPLAY_PX) -> np.ndarray:
    """Nearest-neighbour stride so that the longest side is at most ``max_side``."""
    stride = max(1, math.ceil(max(array.shape[:2]) / max_side))
    return array[::stride, ::stride]


def _error_map(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray,
               ignore_index: int) -> np.ndarray:
    """Dimmed grey image where correct, red where wrong, black where ignored."""
    grey = image[..., :3].astype(np.float32).mean(axis=-1) * 0.45 + 60
    out = np.repeat(grey[..., None], 3, axis=-1).astype(np.uint8)
    ignored = truth == ignore_index
    out[(truth != prediction) & ~ignored] = ERROR_RGB
    out[ignored] = 0
    return out


def mosaic_panel(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray,
                 classes: ClassSpec, title: str, ignore_index: int = IGNORE_INDEX) -> Figure:
    """Image | ground truth | prediction | errors, with a class legend underneath."""
    image, truth, prediction = (_downsample(np.asarray(a)) for a in (image, truth, prediction))
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    h, w = truth.shape
    panel_w = 4.2
    colors = [rgb for _, rgb in classes]
    fig = Figure(figsize=(4 * panel_w, panel_w * h / w + 1.0), layout="constrained")
    axes = fig.subplots(1, 4)
    panels = [
        ("image", image[..., :3]),
        ("ground truth", colorize(truth, colors, ignore_index)),
        ("prediction", colorize(prediction, colors, ignore_index)),
        ("errors", _error_map(image, truth, prediction, ignore_index)),
    ]
    for ax, (name, data) in zip(axes, panels):
        ax.imshow(data, interpolation="nearest")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Patch(facecolor=np.asarray(rgb) / 255, edgecolor="black", label=name)
               for name, rgb in classes]
    handles += [Patch(facecolor="grey", edgecolor="black", label="correct"),
                Patch(facecolor=np.asarray(ERROR_RGB) / 255, edgecolor="black", label="error"),
                Patch(facecolor="black", edgecolor="black", label="ignored")]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    fig.suptitle(title, fontweight="bold")
    return fig


def _row_normalise(counts: np.ndarray) -> np.ndarray:
    """Divide each row by its sum; rows with no support become NaN (no warning)."""
    counts = np.asarray(counts, dtype=float)
    support = counts.sum(axis=1, keepdims=True)
    out = np.full_like(counts, np.nan)
    np.divide(counts, support, out=out, where=support > 0)
    return out


def _short(name: str, limit: int = 11) -> str:
    """Tick label: words wrapped onto lines, each cut to ``limit`` characters."""
    return "\n".join(w if len(w) <= limit else w[: limit - 1] + "." for w in name.split()[:2])


def confusion_grid(confusions: Mapping[str, np.ndarray], class_names: Sequence[str],
                   title: str) -> Figure:
    """Row-normalised confusion heatmaps, one per case, sharing a 0..1 colour scale."""
    n = len(confusions)
    ncols = min(3, max(n, 1))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(4.2 * ncols + 1.2, 4.2 * nrows + 0.6), layout="compressed")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    labels = [_short(c) for c in class_names]
    annot_size = max(5, 10 - len(class_names) // 2)
    for i, ax in enumerate(axes):
        if i >= n:
            fig.delaxes(ax)
    import seaborn  # imported here: it pulls in scipy, which the other figures do not need

    used = list(axes[:n])
    for ax, (case, counts) in zip(used, confusions.items()):
        seaborn.heatmap(_row_normalise(counts), ax=ax, vmin=0, vmax=1, cmap="Blues", cbar=False,
                    annot=True, fmt=".2f", annot_kws={"size": annot_size}, square=True,
                    xticklabels=labels, yticklabels=labels, linewidths=0.5, linecolor="white")
        for row in np.flatnonzero(np.asarray(counts).sum(axis=1) == 0):
            ax.text(len(labels) / 2, row + 0.5, "no pixels of this class", ha="center",
                    va="center", color="grey", fontsize=annot_size, style="italic")
        ax.set_title(case)
        ax.set_xlabel("prediction")
        ax.set_ylabel("ground truth")
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        ax.tick_params(axis="y", labelrotation=0, labelsize=8)
    if used:
        fig.colorbar(used[0].collections[0], ax=used, shrink=0.8, label="fraction of row")
    fig.suptitle(title, fontweight="bold")
    return fig


def metric_vs_patch_size(evaluation: pd.DataFrame,
                         metrics: tuple[str, ...] = ("miou", "f1", "overall_accuracy")) -> Figure:
    """One panel per metric: metric vs patch size, colour = init, line style = image; with
    ``{metric}_sd`` columns (several repeats) error bars of one standard deviation."""
    fig = Figure(figsize=(4.6 * len(metrics), 4.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics), squeeze=False).ravel())
    sizes = sorted(int(s) for s in evaluation["patch_size"].unique())
    spreads = [f"{m}_sd" for m in metrics if f"{m}_sd" in evaluation]  # over repeats, when there are several
    grouped = (evaluation.groupby(["init", "image", "patch_size"], as_index=False)[list(metrics) + spreads]
               .mean().sort_values("patch_size"))
    inits = sorted(grouped["init"].unique(), key=lambda s: (s not in INIT_COLORS, s))
    images = sorted(grouped["image"].unique(), key=lambda s: (s not in IMAGE_STYLES, s))
    import seaborn

    extra = iter(seaborn.color_palette("deep", 10)[2:])
    colors = {i: INIT_COLORS.get(i) or next(extra) for i in inits}
    styles = {img: IMAGE_STYLES.get(img, ":") for img in images}
    for ax, metric in zip(axes, metrics):
        for (init, image), part in grouped.groupby(["init", "image"], sort=False):
            ax.errorbar(part["patch_size"], part[metric], yerr=part.get(f"{metric}_sd"), color=colors[init],
                        linestyle=styles[image], marker="o", capsize=3)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("patch size (px)")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric.replace("_", " ")))
        ax.set_title(METRIC_LABELS.get(metric, metric.replace("_", " ")))
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colors[i], marker="o", label=i) for i in inits]
    handles += [Line2D([], [], color="dimgray", linestyle=styles[img], label=f"{img} image")
                for img in images]
    fig.legend(handles=handles, loc="outside right center", frameon=False)
    fig.suptitle("Metrics vs patch size", fontweight="bold")
    return fig


SIZE_MARKERS = "osD^v<>"


def learning_curves(histories: Mapping["Run", pd.DataFrame], title: str = "") -> Figure:
    """Validation mIoU against optimiser steps and against training pixels seen, one line per
    run (``histories``: `config.Run` -> history with ``steps`` and ``pixels``), coloured by
    initialisation, marked by patch size; repeats after the first thinner. A patch size that
    learns faster per step and one that learns faster per pixel can be told apart at a glance."""
    fig = Figure(figsize=(12, 4.4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    sizes = sorted({run.case.size for run in histories})
    order = sorted(histories, key=lambda run: (run.repeat, run.case.init, run.case.size))
    for run, history in ((run, histories[run]) for run in order):
        first = run.repeat == 1
        style = dict(color=INIT_COLORS.get(run.case.init, "grey"), marker=SIZE_MARKERS[sizes.index(run.case.size) % 7],
                     markersize=4 if first else 2, linewidth=1.6 if first else 0.6,
                     alpha=1.0 if first else 0.45, label=run.case.name if first else None)
        axes[0].plot(history["steps"], history["val_miou"], **style)
        axes[1].plot(history["pixels"] / 1e6, history["val_miou"], **style)
    for ax, label in zip(axes, ("optimiser steps", "training pixels seen (millions)")):
        ax.set_xlabel(label)
        ax.set_title(f"validation mIoU against {label.split(' (')[0]}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation mIoU")
    axes[1].set_xscale("log")
    axes[1].xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 1, 10, 100: plain numbers
    axes[1].xaxis.set_minor_formatter(FuncFormatter(_two_and_five))
    axes[0].legend(fontsize="small")
    fig.suptitle(title or "Learning curves: patch size at equal steps and at equal pixels", fontweight="bold")
    return fig


def _two_and_five(value: float, _position) -> str:
    """A log axis' minor tick label: only 2 and 5 times a power of ten (20, 50, ...), plainly."""
    leading = round(value / 10 ** math.floor(math.log10(value))) if value > 0 else 0
    return f"{value:g}" if leading in (2, 5) else ""


def reliability_diagram(counts_by_case: Mapping[str, "ReliabilityCounts"], title: str = "") -> Figure:
    """Calibration of each case at a glance. Top: accuracy against mean confidence per
    confidence bin, one line per case (its ECE in the legend; an empty bin leaves a gap),
    and the diagonal a calibrated model would follow: below it is over-confidence. Bottom:
    the pixels in each bin, one bar per case side by side within the bin, on a log axis,
    since confident bins usually hold most pixels. The lines' data are exactly
    `ReliabilityCounts.confidence_per_bin` and `accuracy_per_bin`, the bars' heights ``pixels``."""
    fig = Figure(figsize=(8.5, 7.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.3])
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
    share = 0.85 / max(len(counts_by_case), 1)  # of a bin's width, per case's bar
    for i, (case, counts) in enumerate(counts_by_case.items()):
        color, edges = CASE_PALETTE[i % len(CASE_PALETTE)], bin_edges(counts.n_bins)
        top.plot(counts.confidence_per_bin(), counts.accuracy_per_bin(), marker="o", markersize=4,
                 color=color, label=f"{case} (ECE {counts.ece():.3f})", gid=case)
        bin_width = edges[1] - edges[0]
        bottom.bar(edges[:-1] + bin_width * (0.075 + i * share), counts.pixels, width=bin_width * share,
                   align="edge", color=color, label=case, gid=case)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title("accuracy against confidence, per confidence bin")
    top.grid(alpha=0.3)
    top.legend(fontsize="small", loc="upper left")
    bottom.set_yscale("log")
    bottom.set_ylabel("pixels per bin")
    bottom.set_xlabel(f"confidence (softmax at the chosen class; {len(edges) - 1} equal-width bins)")
    bottom.grid(alpha=0.3, axis="y")
    fig.suptitle(title or "Reliability diagram", fontweight="bold")
    return fig


def save(fig: Figure, path) -> None:
    """Write ``fig`` as PNG (dpi 120) atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
