"""Tests for aerialseg.calibration (confidence, reliability counts, ECE, temperature scaling)
and the reliability diagram of aerialseg.figures."""

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from aerialseg.calibration import (
    FRAME_COLUMNS,
    ReliabilityCounts,
    bin_index,
    confidence_from_logits,
    fit_sample,
    fit_temperature,
    nll,
    pixel_rows,
    pool,
    softmax,
    temperature_helps,
)
from aerialseg.figures import reliability_diagram, save
from aerialseg.files import write_csv

INT_FIELDS = ("pixels", "correct", "above_pixels", "above_correct")
FLOAT_FIELDS = ("confidence_sum", "confidence_sum_correct")


def _assert_same_counts(a: ReliabilityCounts, b: ReliabilityCounts) -> None:
    for name in INT_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in FLOAT_FIELDS:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12, err_msg=name)


def _random_pixels(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0, 1, n).astype(np.float32)
    return confidence, rng.uniform(0, 1, n) < confidence


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", [2, 5, 6])
@pytest.mark.parametrize("value", [0.0, -3.5, 1e4])
def test_constant_logits_give_a_confidence_of_one_over_k(dtype, classes, value):
    logits = np.full((classes, 4, 3), value, dtype=dtype)
    confidence = confidence_from_logits(logits, axis=0)
    assert confidence.shape == (4, 3) and confidence.dtype == dtype
    np.testing.assert_allclose(confidence, 1 / classes, rtol=1e-7)
    softened = confidence_from_logits(logits, axis=0, temperature=0.3)
    np.testing.assert_allclose(softened, 1 / classes, rtol=1e-7)


def test_confidence_is_the_softmax_at_the_argmax_class_along_the_axis_asked():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(2, 5, 7, 6))  # (B, K, H, W)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax(logits, axis=1), probabilities, rtol=1e-12)
    np.testing.assert_allclose(confidence_from_logits(logits, axis=1), probabilities.max(axis=1), rtol=1e-12)
    scaled = np.exp(logits / 2.5) / np.exp(logits / 2.5).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(confidence_from_logits(logits, axis=1, temperature=2.5), scaled.max(axis=1),
                               rtol=1e-12)


def test_confidence_does_not_overflow_on_large_logits():
    logits = np.array([[1000.0], [999.0], [-1000.0]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        confidence = confidence_from_logits(logits, axis=0)
    np.testing.assert_allclose(confidence, [1 / (1 + np.exp(-1))], rtol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        confidence_from_logits(logits, temperature=0)


def test_pixel_rows_hold_the_k_logits_of_one_pixel_each():
    logits = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)  # (B, K, H, W)
    rows = pixel_rows(logits, axis=1)
    assert rows.shape == (2 * 4 * 5, 3)
    np.testing.assert_array_equal(rows[1 * 20 + 2 * 5 + 3], logits[1, :, 2, 3])
    assert pixel_rows(logits[0], axis=0).shape == (20, 3)


def test_bins_are_fifteen_equal_widths_with_one_in_the_last():
    edges = np.arange(16) / 15
    np.testing.assert_array_equal(bin_index(edges[:-1]), np.arange(15))  # an edge opens its bin
    just_below = np.nextafter(edges[1:-1], 0)
    np.testing.assert_array_equal(bin_index(just_below), np.arange(14))  # the bin before
    assert bin_index(np.array([0.0, 1.0, np.float32(1.0)])).tolist() == [0, 14, 14]
    frame = ReliabilityCounts.empty().to_frame()
    np.testing.assert_allclose(frame["lower"], edges[:-1])
    np.testing.assert_allclose(frame["upper"], edges[1:])


def test_a_calibrated_synthetic_set_has_an_ece_near_zero():
    confidence, correct = _random_pixels(1_000_000)
    counts = ReliabilityCounts.of(confidence, correct)
    assert counts.total == 1_000_000
    assert counts.ece() < 0.01
    np.testing.assert_allclose(counts.accuracy_per_bin(), counts.confidence_per_bin(), atol=0.01)


def test_an_over_confident_set_has_the_ece_of_the_formula():
    correct = np.arange(1000) < 600  # accuracy 0.6 at confidence 0.95
    counts = ReliabilityCounts.of(np.full(1000, 0.95), correct)
    assert counts.ece() == pytest.approx(0.35, abs=1e-12)
    # two bins: 1000 px at 0.95 with accuracy 0.6, 400 px at 0.2 with accuracy 0.5
    two = counts.add(np.full(400, 0.2), np.arange(400) < 200)
    assert two.ece() == pytest.approx(1000 / 1400 * 0.35 + 400 / 1400 * 0.3, abs=1e-12)
    assert np.isnan(ReliabilityCounts.empty().ece())


def test_confidence_of_right_and_wrong_pixels_and_pixels_above_0_9():
    confidence = np.array([0.95, 0.92, 0.9, 0.5, 0.4, 1.0])
    correct = np.array([True, False, True, True, False, True])
    counts = ReliabilityCounts.of(confidence, correct)
    assert counts.mean_confidence_correct() == pytest.approx((0.95 + 0.9 + 0.5 + 1.0) / 4)
    assert counts.mean_confidence_wrong() == pytest.approx((0.92 + 0.4) / 2)
    assert counts.high_confidence_share() == pytest.approx(3 / 6)  # 0.95, 0.92, 1.0; exactly 0.9 is not above
    assert counts.high_confidence_accuracy() == pytest.approx(2 / 3)
    summary = counts.summary()
    assert summary["accuracy"] == pytest.approx(4 / 6) and summary["pixels"] == 6
    assert summary["ece"] == counts.ece()
    all_right = ReliabilityCounts.of(confidence, np.ones(6, bool))
    assert np.isnan(all_right.mean_confidence_wrong())


def test_accumulating_two_halves_equals_accumulating_the_whole():
    confidence, correct = _random_pixels(10_000, seed=2)
    valid = np.random.default_rng(3).uniform(size=10_000) > 0.2
    whole = ReliabilityCounts.of(confidence, correct, valid)
    halves = ReliabilityCounts.empty().add(confidence[:3000], correct[:3000], valid[:3000])
    halves = halves.add(confidence[3000:], correct[3000:], valid[3000:])
    _assert_same_counts(halves, whole)
    summed = (ReliabilityCounts.of(confidence[:3000], correct[:3000], valid[:3000])
              + ReliabilityCounts.of(confidence[3000:], correct[3000:], valid[3000:]))
    _assert_same_counts(summed, whole)
    _assert_same_counts(pool([summed, ReliabilityCounts.empty()]), whole)
    assert pool([]).total == 0
    assert whole.ece() == pytest.approx(halves.ece(), rel=1e-12)


def test_only_valid_pixels_count_whatever_the_shape():
    confidence, correct = _random_pixels(600, seed=4)
    valid = np.arange(600) % 3 != 0
    block = ReliabilityCounts.of(confidence.reshape(20, 30), correct.reshape(20, 30), valid.reshape(20, 30))
    _assert_same_counts(block, ReliabilityCounts.of(confidence[valid], correct[valid]))
    assert block.total == 400


def test_counts_are_read_only_and_bad_input_is_refused():
    counts = ReliabilityCounts.of(np.array([0.5]), np.array([True]))
    with pytest.raises(ValueError):
        counts.pixels[0] = 3
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        counts.add(np.array([1.2]), np.array([True]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        counts.add(np.array([np.nan]), np.array([True]))
    with pytest.raises(ValueError, match="shape"):
        counts.add(np.array([0.5, 0.6]), np.array([True]))
    with pytest.raises(ValueError, match="bins"):
        counts + ReliabilityCounts.empty(10)


def test_counts_survive_a_csv_round_trip(tmp_path):
    confidence, correct = _random_pixels(5000, seed=5)
    counts = ReliabilityCounts.of(confidence, correct)
    frame = counts.to_frame()
    assert tuple(frame.columns) == FRAME_COLUMNS and len(frame) == 15
    write_csv(frame, tmp_path / "reliability.csv")
    back = ReliabilityCounts.from_frame(pd.read_csv(tmp_path / "reliability.csv"))
    _assert_same_counts(back, counts)
    assert back.summary() == pytest.approx(counts.summary(), rel=1e-12)
    with pytest.raises(ValueError, match="columns"):
        ReliabilityCounts.from_frame(frame.drop(columns="correct"))
    with pytest.raises(ValueError, match="in order"):
        ReliabilityCounts.from_frame(frame.iloc[::-1])


def _sampled_labels(n: int, classes: int, seed: int):
    """Logits z and labels drawn from softmax(z): z is a calibrated model's logits."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, size=(n, classes))
    probabilities = softmax(z, axis=1)
    labels = (rng.uniform(size=(n, 1)) > probabilities.cumsum(axis=1)).sum(axis=1)
    return z, np.minimum(labels, classes - 1)


def test_the_temperature_fit_recovers_a_known_temperature():
    z, labels = _sampled_labels(200_000, 6, seed=6)
    fit = fit_temperature((z * 3).astype(np.float32), labels)
    assert fit.temperature == pytest.approx(3, rel=0.05)
    assert fit.nll_after < fit.nll_before and fit.pixels == 200_000
    assert fit.nll_after == pytest.approx(nll(z * 3, labels, fit.temperature))
    calibrated = fit_temperature(z, labels)
    assert calibrated.temperature == pytest.approx(1, rel=0.05)
    before = ReliabilityCounts.of(confidence_from_logits(z * 3, axis=1), (z.argmax(1) == labels))
    after = ReliabilityCounts.of(confidence_from_logits(z * 3, axis=1, temperature=fit.temperature),
                                 (z.argmax(1) == labels))
    assert after.ece() < 0.01 < before.ece()


def test_the_temperature_fit_skips_ignored_pixels_and_subsamples_deterministically():
    z, labels = _sampled_labels(60_000, 4, seed=7)
    labels = labels.copy()
    labels[::3] = 255
    z[::3] = np.array([50.0, 0, 0, 0])  # confidently class 0: would pull T up if counted
    fit = fit_temperature(z * 0.5, labels, max_pixels=30_000)
    assert fit.pixels == 30_000
    assert fit.temperature == pytest.approx(0.5, rel=0.08)
    rows = fit_sample(labels, max_pixels=1000)
    assert len(rows) == 1000 and np.all(labels[rows] != 255) and np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(rows, fit_sample(labels, max_pixels=1000))
    with pytest.raises(ValueError, match="class ids"):
        fit_temperature(z, np.full(len(z), 7))
    with pytest.raises(ValueError, match="no labelled"):
        fit_temperature(z, np.full(len(z), 255))


def test_temperature_helps_only_when_it_lowers_the_ece_in_most_runs():
    assert temperature_helps([0.1, 0.1, 0.1], [0.05, 0.2, 0.09])
    assert not temperature_helps([0.1, 0.1], [0.05, 0.2])  # half is not most
    assert not temperature_helps([0.1], [0.1])


def test_the_reliability_diagram_plots_the_counts(tmp_path):
    cases = {"imagenet_p64": ReliabilityCounts.of(*_random_pixels(20_000, seed=8)),
             "scratch_p64": ReliabilityCounts.of(np.full(100, 0.95), np.arange(100) < 60)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = reliability_diagram(cases, "reliability")
        save(fig, tmp_path / "reliability.png")
    assert fig._suptitle.get_text() == "reliability"
    top, bottom = fig.axes
    lines = {line.get_gid(): line for line in top.lines if line.get_gid()}
    bars = {container.get_label(): container for container in bottom.containers}
    assert set(lines) == set(bars) == set(cases)
    for case, counts in cases.items():
        np.testing.assert_array_equal(lines[case].get_ydata(), counts.accuracy_per_bin())
        np.testing.assert_array_equal(lines[case].get_xdata(), counts.confidence_per_bin())
        assert [bar.get_height() for bar in bars[case]] == counts.pixels.tolist()
    legend = [text.get_text() for text in top.get_legend().get_texts()]
    assert "scratch_p64 (ECE 0.350)" in legend
    assert (tmp_path / "reliability.png").stat().st_size > 0


def test_the_module_imports_without_torch():
    code = "import sys, aerialseg.calibration; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
