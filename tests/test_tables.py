"""The comparison tables: one repeat keeps the study's columns, several add means and spreads."""

import re

import numpy as np
import pandas as pd
import pytest

from aerialseg import tables
from aerialseg.config import Case, Run

CASES = [Case("imagenet", 32), Case("scratch", 32), Case("imagenet", 64), Case("scratch", 64)]


def history(best_miou, seconds=10.0):
    return pd.DataFrame({"epoch": [1, 2], "train_loss": [0.9, 0.5], "train_acc": [0.6, 0.8], "train_miou": [0.4, 0.6],
                         "val_loss": [0.8, 0.6], "val_acc": [0.7, 0.85], "val_miou": [0.5, best_miou],
                         "seconds": [seconds / 2, seconds / 2], "steps": [10, 20], "pixels": [10240, 20480],
                         "partial": [False, False]})


def confusion(correct):
    return np.array([[correct, 100 - correct], [10, 90]])


def runs(repeats):
    histories = {Run(c, r): history(0.6 + 0.01 * r + 0.1 * i, 10.0 + r) for i, c in enumerate(CASES) for r in range(1, repeats + 1)}
    confusions = {(Run(c, r), image): confusion(50 + 10 * i + r + (image == "test"))
                  for i, c in enumerate(CASES) for r in range(1, repeats + 1) for image in ("train", "test")}
    return histories, confusions


def test_the_tables_have_the_same_columns_whatever_the_number_of_repeats():
    one, three = runs(1), runs(3)
    for build, columns, scores in ((tables.training_table, tables.TRAINING_COLUMNS, tables.TRAINING_SCORES),
                                   (tables.evaluation_table, tables.EVALUATION_COLUMNS, tables.EVALUATION_SCORES)):
        single, repeated = build(one[0] if build is tables.training_table else one[1]), \
            build(three[0] if build is tables.training_table else three[1])
        expected = columns + ["repeats"] + [f"{score}_sd" for score in scores]
        assert list(single.columns) == expected == list(repeated.columns)  # the contract columns first
        assert (single.repeats == 1).all() and single[[f"{s}_sd" for s in scores]].isna().all().all()
    training = tables.training_table(one[0])
    assert training.case.tolist() == [c.name for c in CASES]
    assert training.val_miou.tolist() == pytest.approx([0.61, 0.71, 0.81, 0.91]) and training.best_epoch.tolist() == [2] * 4
    assert training.best_epoch.dtype == np.int64  # one repeat: the run's own values, of their own type
    per_class = tables.per_class_table(one[1], ["a", "b"])
    assert list(per_class.columns)[: len(tables.PER_CLASS_COLUMNS)] == tables.PER_CLASS_COLUMNS and len(per_class) == 16


def test_with_repeats_scores_are_means_with_their_spread():
    histories, confusions = runs(3)
    training = tables.training_table(histories)
    assert list(training.columns) == tables.TRAINING_COLUMNS + ["repeats"] + [f"{s}_sd" for s in tables.TRAINING_SCORES]
    first = training.iloc[0]
    assert first.case == "imagenet_p32" and first.repeats == 3 and first.epochs == 2
    assert first.val_miou == pytest.approx(0.62) and first.val_miou_sd == pytest.approx(0.01)
    assert first.train_seconds == pytest.approx(12.0) and first.train_seconds_sd == pytest.approx(1.0)
    evaluation = tables.evaluation_table(confusions)
    assert len(evaluation) == 8 and (evaluation.repeats == 3).all()
    single = tables.evaluation_runs({k: v for k, v in confusions.items() if k[0].case == CASES[0] and k[1] == "test"})
    row = evaluation[(evaluation.case == "imagenet_p32") & (evaluation.image == "test")].iloc[0]
    assert row.miou == pytest.approx(single.miou.mean()) and row.miou_sd == pytest.approx(single.miou.std())
    per_class = tables.per_class_table(confusions, ["a", "b"])
    assert len(per_class) == 16 and "iou_sd" in per_class and (per_class.support > 0).all()
    # imagenet_p32 on the test image: class a has c of 100 right, 100 - c and 10 wrong, c = 52, 53, 54
    a = per_class[(per_class.case == "imagenet_p32") & (per_class.image == "test") & (per_class["class"] == "a")].iloc[0]
    assert a.iou == pytest.approx(53 / 110) and a.iou_sd == pytest.approx(1 / 110) and a.support == 100
    assert a.recall == pytest.approx(0.53) and a.precision == pytest.approx(np.mean([c / (c + 10) for c in (52, 53, 54)]))


def test_every_run_is_kept_with_its_seed_and_training_scores():
    histories, confusions = runs(2)
    table = tables.runs_table(histories, confusions, seeds={1: 42, 2: 43})
    assert list(table.columns) == tables.RUN_COLUMNS and len(table) == 4 * 2 * 2
    second = table[(table.case == "scratch_p64") & (table.repeat == 2) & (table.image == "test")].iloc[0]
    assert second.seed == 43 and second.val_miou == pytest.approx(0.6 + 0.02 + 0.3) and second.train_seconds == 12.0


def test_the_study_s_tables_in_its_layout():
    histories, confusions = runs(2)
    stats = pd.DataFrame({"image": ["train", "train", "test", "test"], "class": ["a", "b", "a", "b"],
                          "pixels": [1, 3, 1, 1], "share": [25.0, 75.0, 50.0, 50.0]})
    text = tables.study_tables(stats, tables.training_table(histories), tables.evaluation_table(confusions))
    assert re.search(r"\| a +\| 25.00 +\| 50.00 +\|", text)
    lines = [line for line in text.splitlines() if line.startswith("| 1a") or line.startswith("| 2b")]
    assert [line.split("|")[1].strip() for line in lines] == ["1a", "2b", "1a", "2b"]  # Tables 2 and 3
    assert "61.50 ± 0.71" in text  # validation IoU of 1a in percent, mean ± sd over 2 seeds
    assert "mean ± sd over 2 seeds" in text and "Training time (min)" in text and "Test F1 (%)" in text


def test_the_kept_epoch_is_the_first_with_the_best_validation_miou():
    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "val_miou": [0.5, np.nan, 0.7, 0.7]})
    assert tables.best_epoch(history) == 3
    assert tables.best_epoch(history.assign(val_miou=np.nan)) == 1


def test_the_test_ece_joins_the_evaluation_and_runs_tables_on_the_test_rows_only():
    histories, confusions = runs(2)
    ece = {run: 0.01 * run.repeat + 0.1 * i for i, case in enumerate(CASES) for run in (Run(case, 1), Run(case, 2))}
    evaluation = tables.evaluation_table(confusions, ece)
    without = tables.evaluation_table(confusions)
    assert list(evaluation.columns) == list(without.columns) and "ece" in evaluation and "ece_sd" in evaluation
    scores = [c for c in without.columns if c not in ("ece", "ece_sd")]
    pd.testing.assert_frame_equal(evaluation[scores], without[scores])  # the other scores as they were
    test = evaluation[evaluation.image == "test"].set_index("case")
    assert test.loc["scratch_p32", "ece"] == pytest.approx(0.115) and test.loc["scratch_p32", "ece_sd"] == pytest.approx(
        np.std([0.11, 0.12], ddof=1))
    assert evaluation[evaluation.image == "train"].ece.isna().all() and without.ece.isna().all()
    table = tables.runs_table(histories, confusions, {1: 42, 2: 43}, ece)
    assert table[table.image == "test"].ece.tolist() == pytest.approx([ece[Run(c, r)] for r in (1, 2) for c in CASES])
