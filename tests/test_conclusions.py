"""The verdict rule on made-up runs with known answers."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from aerialseg import conclusions
from aerialseg.budget import Epochs, Steps
from aerialseg.conclusions import CONTRADICTED, NOT_RESOLVED, SUPPORTED, Difference, t_quantile
from aerialseg.tables import RUN_COLUMNS

SIZES = (32, 64, 128)
EPOCHS = Epochs(epochs=8, batch_size=8)
OVERLAPPING = {size: size // 2 for size in SIZES}  # training stride of each patch size: half a patch
APART = {size: size for size in SIZES}  # a patch at a time: no overlap


def make_runs(miou, seconds=None, val_gap=0.05):
    """Runs of every case and repeat: ``miou[case]`` and ``seconds[case]`` list one value per repeat."""
    rows = []
    for case, values in miou.items():
        init, size = case.rsplit("_p", 1)
        for repeat, value in enumerate(values, 1):
            for image in ("train", "test"):
                row = dict.fromkeys(RUN_COLUMNS, 0.5)
                steps = {32: 408, 64: 96, 128: 24}[int(size)]  # 8 epochs, non-overlapping, batches of 8
                row.update(case=case, init=init, patch_size=int(size), repeat=repeat, seed=41 + repeat, image=image,
                           miou=value, f1=value + 0.1, val_miou=value + val_gap, steps=steps,
                           pixels=steps * 8 * int(size) ** 2,
                           train_seconds=(seconds or {}).get(case, [100.0] * len(values))[repeat - 1])
                rows.append(row)
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def steady(base, step, n=3, noise=0.002):
    """n repeats around ``base``, rising by ``step`` per patch size, with a little seed noise."""
    wiggle = np.linspace(-noise, noise, n)
    return {size: list(base + step * i + wiggle) for i, size in enumerate(SIZES)}


def test_the_interval_is_a_paired_t_interval():
    d = Difference((1.0, 2.0, 3.0))
    assert d.mean == 2 and d.sd == 1
    low, high = d.interval
    assert (low, high) == pytest.approx((2 - 4.3027 / math.sqrt(3), 2 + 4.3027 / math.sqrt(3)), abs=1e-4)
    assert d.sign == 0  # the spread between seeds is as large as the difference
    assert Difference((1.0, 1.1, 0.9)).sign == 1 and Difference((-1.0, -1.1, -0.9)).sign == -1
    assert Difference((0.3,)).sign == 0 and math.isnan(Difference((0.3,)).interval[0])


@pytest.mark.parametrize("dof, published", [
    (1, 12.7062), (2, 4.3027), (5, 2.5706), (10, 2.2281), (30, 2.0423), (31, 2.0395), (60, 2.0003), (99, 1.9842),
])
def test_t_quantiles_are_exact_for_every_number_of_repeats(dof, published):
    """Two-sided 95 % quantiles of Student's t, as published to four decimals (e.g. NIST/SEMATECH
    e-Handbook, table 1.3.6.7.2); the schema allows up to 100 repeats, 99 degrees of freedom."""
    assert t_quantile(dof) == pytest.approx(published, abs=5e-5)


def test_a_clear_win_is_supported():
    imagenet, scratch = steady(0.60, 0.05), steady(0.50, 0.05)
    runs = make_runs({**{f"imagenet_p{s}": v for s, v in imagenet.items()}, **{f"scratch_p{s}": v for s, v in scratch.items()}},
                     seconds={f"{i}_p{s}": [100.0, 102.0, 98.0] for i in ("imagenet", "scratch") for s in SIZES})
    patch, init, time = conclusions.findings(runs, EPOCHS)
    assert (patch.verdict, init.verdict, time.verdict) == (SUPPORTED, SUPPORTED, SUPPORTED)
    assert "64 -> 128 px: test mIoU +0.0500" in " ".join(patch.evidence) and "a counted gain" in patch.evidence[0]
    assert "ImageNet minus scratch: test mIoU +0.1000" in init.evidence[0]
    assert "ratio 1.000 (95 % CI" in time.evidence[0]


def test_a_tie_within_the_noise_is_not_resolved():
    rng = np.random.default_rng(0)
    runs = make_runs({f"{i}_p{s}": list(0.6 + rng.normal(0, 0.05, 3)) for i in ("imagenet", "scratch") for s in SIZES},
                     seconds={f"{i}_p{s}": list(100 + rng.normal(0, 30, 3)) for i in ("imagenet", "scratch") for s in SIZES})
    patch, init, time = conclusions.findings(runs, EPOCHS)
    assert (patch.verdict, init.verdict, time.verdict) == (NOT_RESOLVED, NOT_RESOLVED, NOT_RESOLVED)
    assert all("within the noise" in line for line in init.evidence)


def test_a_reversal_is_contradicted():
    scratch, imagenet = steady(0.60, -0.05), steady(0.50, -0.05)  # smaller patches and scratch win
    runs = make_runs({**{f"imagenet_p{s}": v for s, v in imagenet.items()}, **{f"scratch_p{s}": v for s, v in scratch.items()}},
                     seconds={**{f"imagenet_p{s}": [150.0, 151.0, 149.0] for s in SIZES},
                              **{f"scratch_p{s}": [100.0, 101.0, 99.0] for s in SIZES}})
    patch, init, time = conclusions.findings(runs, EPOCHS)
    assert (patch.verdict, init.verdict, time.verdict) == (CONTRADICTED, CONTRADICTED, CONTRADICTED)
    assert "a counted loss" in init.evidence[0] and "ratio 1.500" in time.evidence[0]


def test_one_loss_among_gains_contradicts_and_one_tie_leaves_it_open():
    gains = {f"scratch_p{s}": v for s, v in steady(0.5, 0.05).items()}
    assert conclusions.patch_size_finding(make_runs(gains), EPOCHS).verdict == SUPPORTED
    tie = {**gains, "scratch_p128": [0.553, 0.549, 0.551]}  # 64 -> 128 px: +0.005, -0.001, -0.001
    assert conclusions.patch_size_finding(make_runs(tie), EPOCHS).verdict == NOT_RESOLVED
    loss = {**gains, "scratch_p128": [0.40, 0.401, 0.402]}
    assert conclusions.patch_size_finding(make_runs(loss), EPOCHS).verdict == CONTRADICTED


def test_with_one_repeat_differences_are_reported_not_called():
    runs = make_runs({f"{i}_p{s}": [0.9 if i == "imagenet" else 0.1] for i in ("imagenet", "scratch") for s in SIZES})
    found = conclusions.findings(runs, EPOCHS)
    assert [f.verdict for f in found] == [NOT_RESOLVED] * 3
    assert "+0.8000 (one run: reported, not called)" in found[1].evidence[0]


def test_the_document_states_verdicts_and_the_validation_gap():
    runs = make_runs({f"{i}_p{s}": v for i, base in (("imagenet", 0.6), ("scratch", 0.5))
                      for s, v in steady(base, 0.05).items()}, val_gap=0.2)
    found, blocks = conclusions.document(runs, split="random", strides=OVERLAPPING, steps={32: 51, 64: 12, 128: 3},
                                         budget=Epochs(8, 8))
    markdown = conclusions.to_markdown(blocks)
    budget = ("Training budget: equal epochs (every case trained 8 epochs (optimiser steps per epoch: 32 px 51, "
              "64 px 12, 128 px 3); 32 px 408 steps and 3.34 Mpx, 64 px 96 steps and 3.15 Mpx, 128 px 24 steps and 3.15 Mpx).")
    assert markdown.count(budget) == 2  # in the first paragraph and in the patch-size verdict
    assert "## 1. Bigger patches give better results (at equal epochs)." in markdown
    assert markdown.count("**Verdict: supported.**") == 3
    assert re.search(r"\| imagenet_p32 +\| 1a +\| 0.6000 ± 0.0020 +\|", markdown)
    assert re.search(r"\| scratch_p128 +\| 2c +\|", markdown)
    assert "gap +0.2000" in markdown and "`experiment.split: blocks`" in markdown and "inflated" in markdown
    assert "Validation scores above the test image." in markdown
    html = conclusions.to_html(blocks)
    assert html.startswith("<!DOCTYPE html>") and html.count("<strong>Verdict: supported.</strong>") == 3
    assert "<code>experiment.split: blocks</code>" in html
    _, blocked = conclusions.document(runs, split="blocks", strides=OVERLAPPING, budget=EPOCHS)
    assert "validation shares no pixel with training" in conclusions.to_markdown(blocked)
    with_steps = runs.assign(steps=runs.patch_size.map({32: 408, 64: 408, 128: 408}),
                             pixels=runs.patch_size.map({32: 408 * 8 * 32**2, 64: 408 * 8 * 64**2, 128: 408 * 8 * 128**2}))
    _, budgeted = conclusions.document(with_steps, "random", strides=APART, steps={32: 51, 64: 12, 128: 3},
                                       budget=Steps(8, 8))
    assert ("Training budget: equal optimiser steps (every case trained as many optimiser steps as the 32 px patches "
            "take in 8 epochs; 32 px 408 steps and 3.34 Mpx, 64 px 408 steps and 13.4 Mpx, 128 px 408 steps and 53.5 Mpx).") \
        in conclusions.to_markdown(budgeted)



GAP_SENTENCES = ("Here the test image scores above validation", "Validation and test agree within 0.01.",
                 "Validation scores above the test image.")


@pytest.mark.parametrize("val_gap, says", list(zip((-0.05, 0.004, 0.05), GAP_SENTENCES)))
def test_the_gap_sentence_follows_the_sign_of_the_gap(val_gap, says):
    runs = make_runs({f"{i}_p{s}": [0.6, 0.61] for i in ("imagenet", "scratch") for s in SIZES}, val_gap=val_gap)
    last = conclusions.generalisation_notes(runs, split="random", strides=APART)[-1]
    assert last.startswith(f"Mean gap over the cases: {val_gap:+.4f}. {says}")
    assert [sentence in last for sentence in GAP_SENTENCES].count(True) == 1
