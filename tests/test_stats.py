import numpy as np
import pytest

from aerialseg.class_ids import IGNORE_INDEX
from aerialseg.stats import class_counts, class_table, class_weights

NAMES = ["a", "b", "c"]


def test_counts_leave_out_ignored_pixels():
    ids = np.array([0, 0, 1, 2, 2, 2, IGNORE_INDEX], dtype=np.uint8)
    np.testing.assert_array_equal(class_counts(ids, 3), [2, 1, 3])


def test_table_shares_are_percent_of_labelled_pixels():
    table = class_table({"train": np.array([2, 1, 1]), "test": np.array([0, 3, 1])}, NAMES)
    assert list(table.columns) == ["image", "class", "pixels", "share"]
    train = table[table.image == "train"]
    assert train.share.tolist() == [50.0, 25.0, 25.0]
    assert table[table.image == "test"].share.sum() == pytest.approx(100.0)


def test_weights_are_total_over_count():
    assert class_weights(np.array([2, 1, 5]), NAMES) == {"a": 4.0, "b": 8.0, "c": 1.6}


def test_a_class_without_pixels_is_refused_or_weighed_none():
    from aerialseg.stats import check_every_class_present

    with pytest.raises(ValueError, match="train.png: class\\(es\\) 'b' have no pixels"):
        check_every_class_present(np.array([2, 0, 5]), NAMES, source="train.png")
    check_every_class_present(np.array([2, 1, 5]), NAMES)
    assert class_weights(np.array([2, 0, 5]), NAMES) == {"a": 3.5, "b": None, "c": 1.4}


def test_loss_weights_by_weighting():
    from aerialseg.stats import loss_weights

    weights = {"a": 4.0, "b": 16.0}
    assert loss_weights(weights, ["b", "a"]) == [16.0, 4.0]
    assert loss_weights(weights, ["a", "b"], "inverse_sqrt") == [2.0, 4.0]
    assert loss_weights(weights, ["a", "b"], "none") == [1.0, 1.0]
