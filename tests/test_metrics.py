import numpy as np
import pytest
from sklearn import metrics as skm

from aerialseg.class_ids import IGNORE_INDEX
from aerialseg.metrics import confusion_matrix, per_class, summary


@pytest.mark.parametrize("seed", range(5))
def test_scores_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    n = 5
    truth = rng.integers(0, n, 2000)
    prediction = np.where(rng.random(2000) < 0.6, truth, rng.integers(0, n, 2000))
    truth[rng.random(2000) < 0.1] = IGNORE_INDEX
    cm = confusion_matrix(truth, prediction, n)
    keep = truth != IGNORE_INDEX
    t, p = truth[keep], prediction[keep]
    np.testing.assert_array_equal(cm, skm.confusion_matrix(t, p, labels=range(n)))
    scores = per_class(cm, list("abcde"))
    np.testing.assert_allclose(scores.precision, skm.precision_score(t, p, average=None))
    np.testing.assert_allclose(scores.recall, skm.recall_score(t, p, average=None))
    np.testing.assert_allclose(scores.f1, skm.f1_score(t, p, average=None))
    np.testing.assert_allclose(scores.iou, skm.jaccard_score(t, p, average=None))
    overall = summary(cm)
    assert overall["f1"] == pytest.approx(skm.f1_score(t, p, average="weighted"))
    assert overall["precision"] == pytest.approx(skm.precision_score(t, p, average="weighted"))
    assert overall["recall"] == pytest.approx(skm.recall_score(t, p, average="weighted"))
    assert overall["f1_macro"] == pytest.approx(skm.f1_score(t, p, average="macro"))
    assert overall["miou"] == pytest.approx(skm.jaccard_score(t, p, average="macro"))
    assert overall["overall_accuracy"] == pytest.approx(skm.accuracy_score(t, p))
    assert overall["kappa"] == pytest.approx(skm.cohen_kappa_score(t, p))


def test_a_class_absent_from_truth_and_prediction_is_nan_and_skipped():
    truth = np.array([0, 0, 1, 1])
    prediction = np.array([0, 1, 1, 1])
    scores = per_class(confusion_matrix(truth, prediction, 3), ["a", "b", "c"])
    assert np.isnan(scores.iou[2]) and np.isnan(scores.f1[2]) and scores.support[2] == 0
    assert summary(confusion_matrix(truth, prediction, 3))["miou"] == pytest.approx((0.5 + 2 / 3) / 2)


def test_a_missed_class_scores_zero_not_nan():
    scores = per_class(confusion_matrix(np.array([0, 1]), np.array([0, 0]), 2), ["a", "b"])
    assert scores.recall[1] == 0 and scores.iou[1] == 0 and np.isnan(scores.precision[1])


def test_ignored_pixels_are_left_out():
    truth = np.array([0, IGNORE_INDEX, 1])
    prediction = np.array([0, 1, 1])
    assert confusion_matrix(truth, prediction, 2).sum() == 2
