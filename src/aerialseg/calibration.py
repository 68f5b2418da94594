"""Confidence and calibration of the per-pixel class probabilities.

A pixel's *confidence* is the softmax of its logits at the chosen (argmax) class: the
probability the model gives to its own answer. A model is *calibrated* when, among the
pixels it answers with confidence about c, a share of about c is right.

`ReliabilityCounts` holds, per confidence bin, the few sums every calibration score needs.
It is additive, so a map processed block by block, or the test tiles of a run, are pooled
by summing (``+`` or `pool`), and it travels between jobs as a small CSV (`to_frame`,
`from_frame`). The scores (ECE, accuracy per bin, mean confidence of right and wrong pixels,
the share and accuracy of pixels above 0.9 confidence) are read off the pooled counts, so a
pooled score is the score of all pooled pixels together, not a mean of per-tile scores.

Temperature scaling (Guo et al. 2017) divides all logits by one scalar T > 0, fitted by
`fit_temperature` to minimise the negative log-likelihood on held-out (validation) pixels;
T > 1 softens an over-confident model. It never changes the argmax, so the map's classes
and every confusion-matrix score stay as they are; only the confidences move.

Everything here is numpy (and scipy for the one-dimensional fit): no torch, no files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from .class_ids import IGNORE_INDEX

N_BINS = 15
HIGH_CONFIDENCE = 0.9  # "above 0.9": strictly greater; exactly 0.9 is not above
TEMPERATURE_RANGE = (0.05, 20.0)
MAX_FIT_PIXELS = 2_000_000
FIT_SEED = 0
FRAME_COLUMNS = ("bin", "lower", "upper", "pixels", "confidence_sum", "correct",
                 "confidence_sum_correct", "above_pixels", "above_correct")


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    """Class probabilities along ``axis``, computed stably (the maximum logit is subtracted
    first, so large logits do not overflow). Float32 in, float32 out; float64 stays float64."""
    logits = np.asarray(logits)
    dtype = np.result_type(logits.dtype, np.float32)
    shifted = logits.astype(dtype, copy=False) - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def confidence_from_logits(logits: np.ndarray, axis: int = 0, temperature: float = 1.0) -> np.ndarray:
    """The softmax of ``logits / temperature`` at the argmax class, along the class ``axis``
    (0 for the map's (K, rows, W) blocks of blended logits), the class axis removed.

    It is ``1 / sum_k exp((z_k - z_max) / T)``: the largest term is exactly 1, so no full
    softmax is formed, nothing overflows, and constant logits give exactly 1/K."""
    if not temperature > 0:
        raise ValueError(f"the temperature must be positive, not {temperature}")
    logits = np.asarray(logits)
    dtype = np.result_type(logits.dtype, np.float32)
    shifted = logits.astype(dtype, copy=False) - logits.max(axis=axis, keepdims=True)
    if temperature != 1.0:
        shifted /= dtype.type(temperature)
    return (1 / np.exp(shifted).sum(axis=axis)).astype(dtype, copy=False)


CODE_SCALE = 255
"""Confidence and probability rasters hold uint8 codes: code v means v / 255 (the GDAL band
scale 1/255); code 0 is nodata, so a valid pixel's code is at least 1 (a probability under
1/510 is written as 1/255)."""


def to_codes(scores: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Scores in [0, 1] (any shape, e.g. (rows, W) or (K, rows, W)) as uint8 codes
    ``clip(rint(255 x score), 1, 255)``; 0 where ``valid`` (broadcast over the leading axes)
    is False, and where a score is NaN (no window predicted it)."""
    scores = np.asarray(scores)
    with np.errstate(invalid="ignore"):
        codes = np.clip(np.rint(np.nan_to_num(scores, nan=0.0) * CODE_SCALE), 1, CODE_SCALE).astype(np.uint8)
    codes[np.isnan(scores)] = 0
    if valid is not None:
        codes[..., ~np.asarray(valid, dtype=bool)] = 0
    return codes


def from_codes(codes: np.ndarray) -> np.ndarray:
    """uint8 codes as float32 scores (code / 255; nodata 0 reads as 0)."""
    return np.asarray(codes, dtype=np.float32) / CODE_SCALE


def pixel_rows(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    """Logits with the class ``axis`` moved last and the rest flattened: (N pixels, K), the
    layout `fit_temperature` takes (``axis=1`` for a (B, K, H, W) batch, 0 for (K, H, W))."""
    logits = np.asarray(logits)
    return np.moveaxis(logits, axis, -1).reshape(-1, logits.shape[axis])


def bin_edges(n_bins: int = N_BINS) -> np.ndarray:
    """The ``n_bins + 1`` equal-width edges on [0, 1]: i / n_bins."""
    return np.arange(n_bins + 1, dtype=np.float64) / n_bins


def bin_index(confidence: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """The bin of each confidence: bin b holds ``b/n <= c < (b+1)/n``, and the last bin also
    holds c = 1 (it is ``[(n-1)/n, 1]``). The edges are compared as float64 numbers, exactly
    as `bin_edges` writes them, so a confidence equal to an edge falls in the bin it opens."""
    inner = bin_edges(n_bins)[1:-1]
    return np.searchsorted(inner, np.asarray(confidence, dtype=np.float64), side="right")


def _checked(confidence, correct, valid) -> tuple[np.ndarray, np.ndarray]:
    """Flat confidence (float64) and correctness (bool) of the counted pixels."""
    confidence, correct = np.asarray(confidence), np.asarray(correct)
    if confidence.shape != correct.shape:
        raise ValueError(f"confidence has shape {confidence.shape} but correct has {correct.shape}")
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != confidence.shape:
            raise ValueError(f"valid has shape {valid.shape} but confidence has {confidence.shape}")
        confidence, correct = confidence[valid], correct[valid]
    confidence = confidence.astype(np.float64).ravel()
    if confidence.size and not (confidence.min() >= 0 and confidence.max() <= 1):  # NaN fails both
        raise ValueError("confidences must lie in [0, 1] (and not be NaN)")
    return confidence, correct.astype(bool).ravel()


@dataclass(frozen=True, eq=False)
class ReliabilityCounts:
    """Per-bin sums over pixels, for ``len(pixels)`` equal-width confidence bins on [0, 1]
    (15 by default; see `bin_index` for which bin a confidence falls in). Per bin b:

    - ``pixels[b]``: counted pixels whose confidence falls in bin b;
    - ``confidence_sum[b]``: the sum of their confidences;
    - ``correct[b]``: how many of them are right (predicted class = ground truth);
    - ``confidence_sum_correct[b]``: the sum of the confidences of the right ones;
    - ``above_pixels[b]``, ``above_correct[b]``: pixels of bin b with confidence strictly
      above `HIGH_CONFIDENCE` (0.9), and how many of those are right. 0.9 is no bin edge of
      15 bins, so these are kept apart; only the bins containing values above 0.9 are nonzero.

    Every field is a sum, so counts of disjoint pixel sets add up (``a + b``, `pool`). The
    arrays are read-only; `add` returns new counts. Build empty counts with `empty`."""

    pixels: np.ndarray
    confidence_sum: np.ndarray
    correct: np.ndarray
    confidence_sum_correct: np.ndarray
    above_pixels: np.ndarray
    above_correct: np.ndarray

    def __post_init__(self):
        n = len(self.pixels)
        for field in fields(self):
            kind = np.float64 if "confidence" in field.name else np.int64
            array = np.array(getattr(self, field.name), dtype=kind)  # a copy: nobody else holds it
            if array.shape != (n,) or n == 0:
                raise ValueError(f"{field.name} must have one value per bin ({n}), not shape {array.shape}")
            array.setflags(write=False)
            object.__setattr__(self, field.name, array)

    @classmethod
    def empty(cls, n_bins: int = N_BINS) -> ReliabilityCounts:
        """Counts of no pixels."""
        return cls(*(np.zeros(n_bins) for _ in fields(cls)))

    @classmethod
    def of(cls, confidence: np.ndarray, correct: np.ndarray,
           valid: np.ndarray | None = None) -> ReliabilityCounts:
        """Counts of one set of pixels (15 bins): ``empty().add(confidence, correct, valid)``."""
        return cls.empty().add(confidence, correct, valid)

    @property
    def n_bins(self) -> int:
        return len(self.pixels)

    @property
    def total(self) -> int:
        """All counted pixels."""
        return int(self.pixels.sum())

    def add(self, confidence: np.ndarray, correct: np.ndarray,
            valid: np.ndarray | None = None) -> ReliabilityCounts:
        """These counts plus the pixels given: ``confidence`` in [0, 1], ``correct`` (bool,
        same shape: predicted class = ground truth), and optionally ``valid`` (bool, same
        shape): only its True pixels count (pass ``truth != IGNORE_INDEX``, and the map's
        pixels with data). Any array shape; a block of a map or a whole tile alike."""
        confidence, correct = _checked(confidence, correct, valid)
        bins, n = bin_index(confidence, self.n_bins), self.n_bins
        above = confidence > HIGH_CONFIDENCE
        new = (
            np.bincount(bins, minlength=n),
            np.bincount(bins, weights=confidence, minlength=n),
            np.bincount(bins[correct], minlength=n),
            np.bincount(bins[correct], weights=confidence[correct], minlength=n),
            np.bincount(bins[above], minlength=n),
            np.bincount(bins[above & correct], minlength=n),
        )
        return ReliabilityCounts(*(getattr(self, f.name) + v for f, v in zip(fields(self), new)))

    def __add__(self, other: ReliabilityCounts) -> ReliabilityCounts:
        if not isinstance(other, ReliabilityCounts):
            return NotImplemented
        if other.n_bins != self.n_bins:
            raise ValueError(f"cannot add counts of {other.n_bins} bins to counts of {self.n_bins}")
        return ReliabilityCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def accuracy_per_bin(self) -> np.ndarray:
        """Per bin, the share of its pixels that are right; NaN for an empty bin."""
        return _ratio(self.correct, self.pixels)

    def confidence_per_bin(self) -> np.ndarray:
        """Per bin, the mean confidence of its pixels; NaN for an empty bin."""
        return _ratio(self.confidence_sum, self.pixels)

    def ece(self) -> float:
        """Expected calibration error, a fraction 0-1: ``sum_b (pixels_b / N) |acc_b - conf_b|``
        over the non-empty bins, N all counted pixels, acc_b and conf_b the bin's accuracy and
        mean confidence. 0 for a calibrated model; NaN when no pixel was counted."""
        if self.total == 0:
            return float("nan")
        gap = np.abs(self.correct - self.confidence_sum)  # = pixels_b * |acc_b - conf_b|
        return float(gap.sum() / self.total)

    def accuracy(self) -> float:
        """The share of counted pixels that are right (NaN for none)."""
        return float(_ratio(self.correct.sum(), self.total))

    def mean_confidence(self) -> float:
        """The mean confidence of all counted pixels (NaN for none)."""
        return float(_ratio(self.confidence_sum.sum(), self.total))

    def mean_confidence_correct(self) -> float:
        """The mean confidence of the right pixels (NaN when none is right)."""
        return float(_ratio(self.confidence_sum_correct.sum(), self.correct.sum()))

    def mean_confidence_wrong(self) -> float:
        """The mean confidence of the wrong pixels (NaN when none is wrong)."""
        wrong_sum = self.confidence_sum.sum() - self.confidence_sum_correct.sum()
        return float(_ratio(wrong_sum, self.total - self.correct.sum()))

    def high_confidence_share(self) -> float:
        """The share of counted pixels with confidence above 0.9 (strictly; NaN for none)."""
        return float(_ratio(self.above_pixels.sum(), self.total))

    def high_confidence_accuracy(self) -> float:
        """The accuracy of the pixels with confidence above 0.9 (NaN when there are none)."""
        return float(_ratio(self.above_correct.sum(), self.above_pixels.sum()))

    def summary(self) -> dict[str, float]:
        """The scores as one row of a table: ece, accuracy, mean_confidence,
        confidence_correct, confidence_wrong, high_confidence_share, high_confidence_accuracy
        (all fractions 0-1) and pixels."""
        return {
            "ece": self.ece(),
            "accuracy": self.accuracy(),
            "mean_confidence": self.mean_confidence(),
            "confidence_correct": self.mean_confidence_correct(),
            "confidence_wrong": self.mean_confidence_wrong(),
            "high_confidence_share": self.high_confidence_share(),
            "high_confidence_accuracy": self.high_confidence_accuracy(),
            "pixels": self.total,
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per bin: bin, lower, upper (its edges) and the six sums; write it with
        `files.write_csv` and read it back with `from_frame`."""
        edges = bin_edges(self.n_bins)
        frame = pd.DataFrame({"bin": np.arange(self.n_bins), "lower": edges[:-1], "upper": edges[1:]})
        for field in fields(self):
            frame[field.name] = getattr(self, field.name)
        return frame

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> ReliabilityCounts:
        """Counts from a `to_frame` table (or its CSV read by ``pd.read_csv``). Other columns
        are ignored; the bins must be 0..n-1 in order."""
        missing = [c for c in FRAME_COLUMNS if c not in frame]
        if missing:
            raise ValueError(f"a reliability table needs the columns {', '.join(missing)}")
        if not np.array_equal(frame["bin"].to_numpy(), np.arange(len(frame))):
            raise ValueError("a reliability table has one row per bin, bins 0, 1, ... in order")
        return cls(*(frame[f.name].to_numpy() for f in fields(cls)))


def pool(counts: Iterable[ReliabilityCounts]) -> ReliabilityCounts:
    """The sum of several counts (tiles, blocks, runs); empty 15-bin counts for none."""
    total = None
    for item in counts:
        total = item if total is None else total + item
    return total if total is not None else ReliabilityCounts.empty()


def _ratio(numerator, denominator) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0 (no warning)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


@dataclass(frozen=True)
class TemperatureFit:
    """The fitted temperature and the mean negative log-likelihood (nats per pixel) of the
    fitted pixels at T = 1 (``nll_before``) and at T (``nll_after``); ``pixels`` fitted on."""

    temperature: float
    nll_before: float
    nll_after: float
    pixels: int


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` (N,) under ``softmax(logits / T)``, logits
    (N, K), computed in float64 with the log-sum-exp shifted by the row maximum."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    top = scaled.max(axis=1)
    log_norm = top + np.log(np.exp(scaled - top[:, None]).sum(axis=1))
    return float((log_norm - scaled[np.arange(len(scaled)), labels]).mean())


def fit_sample(labels: np.ndarray, ignore_index: int = IGNORE_INDEX, max_pixels: int = MAX_FIT_PIXELS,
               seed: int = FIT_SEED) -> np.ndarray:
    """The (sorted) indices of the pixels a temperature is fitted on: those whose label is not
    ``ignore_index``, and of more than ``max_pixels`` a uniform draw without replacement of
    ``max_pixels`` by ``numpy.random.default_rng(seed)``, so a rerun draws the same pixels."""
    keep = np.flatnonzero(np.asarray(labels).ravel() != ignore_index)
    if len(keep) > max_pixels:
        keep = np.sort(np.random.default_rng(seed).choice(keep, size=max_pixels, replace=False))
    return keep


def fit_temperature(logits: np.ndarray, labels: np.ndarray, ignore_index: int = IGNORE_INDEX,
                    max_pixels: int = MAX_FIT_PIXELS, seed: int = FIT_SEED) -> TemperatureFit:
    """The temperature T in `TEMPERATURE_RANGE` that minimises the mean NLL of ``labels``
    (N,) under ``softmax(logits / T)``, logits (N, K) (see `pixel_rows`), over the pixels
    `fit_sample` picks (at most ``max_pixels``, 2 million: about 100 MB of float64 for 6
    classes, and a temperature is one number, well determined by far fewer).

    The NLL is convex in 1/T, hence unimodal in log T, so a bounded Brent search over log T
    (``scipy.optimize.minimize_scalar``, to 1e-4 in log T) finds the minimum; a T at either
    bound means the best temperature lies beyond it."""
    from scipy.optimize import minimize_scalar  # only the fit needs scipy

    logits, labels = np.asarray(logits), np.asarray(labels).ravel()
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(f"logits must be (N, K) beside N labels, not {logits.shape} beside {labels.shape}")
    rows = fit_sample(labels, ignore_index, max_pixels, seed)
    if len(rows) == 0:
        raise ValueError("no labelled pixels to fit a temperature on")
    sample, targets = logits[rows].astype(np.float64), labels[rows].astype(np.int64)
    if targets.min() < 0 or targets.max() >= logits.shape[1]:
        raise ValueError(f"labels must be class ids 0..{logits.shape[1] - 1} or {ignore_index}")
    low, high = (math.log(t) for t in TEMPERATURE_RANGE)
    result = minimize_scalar(lambda log_t: nll(sample, targets, math.exp(log_t)), bounds=(low, high),
                             method="bounded", options={"xatol": 1e-4})
    temperature = math.exp(result.x)
    return TemperatureFit(temperature, nll(sample, targets), nll(sample, targets, temperature), len(rows))


def temperature_helps(ece_before: Sequence[float], ece_after: Sequence[float]) -> bool:
    """Whether temperature scaling lowered the test ECE in most runs: strictly more than half
    of the runs have ``after < before`` (one pair per run, in the same order)."""
    if len(ece_before) != len(ece_after):
        raise ValueError(f"{len(ece_before)} ECEs before but {len(ece_after)} after")
    lowered = sum(after < before for before, after in zip(ece_before, ece_after))
    return lowered > len(ece_before) / 2
