"""The study's three conclusions, checked against a run with a stated rule.

The original study concluded, by eye from one run per case:

1. bigger patches give better results;
2. ImageNet initialisation beats training from scratch;
3. the initialisation does not change the training time.

Each is checked here on the test image's mIoU (and, for 3, the training time) of every run
(`tables.runs_table`), comparing runs *paired by seed*: repeat r of one case against repeat r
of the other, which share the seed, the patch split and the batch order wherever the cases
allow. The rule, for n repeats and the paired differences d_1..d_n:

* with one repeat a difference is reported, never called: the verdict is *not resolved*;
* with several, the mean difference counts when its 95 % confidence interval
  (mean ± t(0.975, n-1) x sd / sqrt(n), a paired t-test) excludes zero, so it must exceed
  the spread between seeds, and more so the fewer seeds there are;
* a claim of a gain is *supported* when every comparison it makes is a counted gain,
  *contradicted* when any is a counted loss, and *not resolved* otherwise;
* "does not change the training time" is an equivalence claim: the times count as equal when
  the confidence interval of the mean log ratio lies within +-10 % (0.9x to 1.1x), and as
  different when it lies entirely outside that band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from .budget import Budget
from .config import Case
from .tables import case_labels

SUPPORTED, CONTRADICTED, NOT_RESOLVED = "supported", "contradicted", "not resolved"
CONFIDENCE = 0.95
TIME_MARGIN = 0.10
"""Training times within this relative margin count as equal (conclusion 3)."""

def t_quantile(dof: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided ``confidence`` quantile of Student's t with ``dof`` degrees of freedom
    (t(0.975, dof) for 95 %), exact for every dof (scipy)."""
    from scipy.stats import t

    if dof < 1:
        raise ValueError(f"a t interval needs at least 1 degree of freedom, got {dof}")
    return float(t.ppf(0.5 + confidence / 2, dof))


@dataclass(frozen=True)
class Difference:
    """The paired differences of two series of runs and what they allow to say."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def sd(self) -> float:
        return float(np.std(self.values, ddof=1)) if self.n > 1 else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        """The 95 % confidence interval of the mean difference (NaN with one run)."""
        if self.n < 2:
            return float("nan"), float("nan")
        half = t_quantile(self.n - 1) * self.sd / math.sqrt(self.n)
        return self.mean - half, self.mean + half

    @property
    def sign(self) -> int:
        """+1 or -1 for a counted difference, 0 for one within the noise (or a single run)."""
        low, high = self.interval
        return 1 if low > 0 else -1 if high < 0 else 0

    def describe(self, digits: int = 4) -> str:
        if self.n < 2:
            return f"{self.mean:+.{digits}f} (one run: reported, not called)"
        low, high = self.interval
        what = {1: "a counted gain", -1: "a counted loss", 0: "within the noise"}[self.sign]
        return f"{self.mean:+.{digits}f}, 95 % CI [{low:+.{digits}f}, {high:+.{digits}f}] over {self.n} seeds: {what}"


def paired(runs: pd.DataFrame, a: str, b: str, score: str, image: str = "test") -> Difference:
    """Case ``a`` minus case ``b`` on ``score``, repeat by repeat (only repeats both have)."""
    part = runs[runs["image"] == image]
    left = part[part["case"] == a].set_index("repeat")[score]
    right = part[part["case"] == b].set_index("repeat")[score]
    common = left.index.intersection(right.index).sort_values()
    return Difference(tuple(float(left[r] - right[r]) for r in common))


def gain_verdict(differences: list[Difference]) -> str:
    signs = [d.sign for d in differences]
    if any(s < 0 for s in signs):
        return CONTRADICTED
    if signs and all(s > 0 for s in signs):
        return SUPPORTED
    return NOT_RESOLVED


def time_verdict(ratios: list[Difference]) -> str:
    """``ratios`` hold log time ratios; equal within the margin, or different beyond it."""
    margin = math.log(1 + TIME_MARGIN)
    intervals = [d.interval for d in ratios]
    if not intervals or any(math.isnan(low) for low, _ in intervals):
        return NOT_RESOLVED
    if all(-margin < low and high < margin for low, high in intervals):
        return SUPPORTED
    if any(low > margin or high < -margin for low, high in intervals):
        return CONTRADICTED
    return NOT_RESOLVED


@dataclass
class Finding:
    claim: str
    verdict: str
    evidence: list[str]


def _cases(runs: pd.DataFrame) -> tuple[list[str], list[int]]:
    inits = [i for i in ("imagenet", "scratch") if i in set(runs["init"])]
    return inits, sorted(int(s) for s in runs["patch_size"].unique())


def budget_sentence(runs: pd.DataFrame, budget: Budget, steps: dict[int, int] | None = None) -> str:
    """What every case trained for, in words, with the steps and pixels each patch size got."""
    first = runs[(runs["repeat"] == runs["repeat"].min()) & (runs["image"] == "test")]
    per_size = first.groupby("patch_size")[["steps", "pixels"]].first() if {"steps", "pixels"} <= set(runs) else None
    got = "" if per_size is None else "; " + ", ".join(
        f"{size} px {int(row.steps)} steps and {row.pixels / 1e6:.3g} Mpx" for size, row in per_size.iterrows())
    per_epoch = "" if not steps else " (optimiser steps per epoch: " + ", ".join(
        f"{size} px {n}" for size, n in sorted(steps.items())) + ")"
    reference = f"{min(steps)} px" if steps else "smallest"
    return f"Training budget: {budget.held_equal} ({budget.describe(reference, per_epoch)}{got})."


def patch_size_finding(runs: pd.DataFrame, budget: Budget, context: str = "") -> Finding:
    """``context``: the budget sentence (`budget_sentence`), which says what was held equal."""
    inits, sizes = _cases(runs)
    evidence, differences = [], []
    for init in inits:
        for small, big in zip(sizes, sizes[1:]):
            d = paired(runs, Case(init, big).name, Case(init, small).name, "miou")
            differences.append(d)
            evidence.append(f"{init}, {small} -> {big} px: test mIoU {d.describe()}")
    if len(sizes) < 2:
        evidence.append("only one patch size was run: nothing to compare")
    else:
        evidence.append(f"The comparison is of patch size at {budget.held_equal}. {context} {budget.mixes}")
    return Finding(f"Bigger patches give better results (at {budget.held_equal}).", gain_verdict(differences), evidence)


def init_finding(runs: pd.DataFrame) -> Finding:
    inits, sizes = _cases(runs)
    evidence, differences = [], []
    if len(inits) < 2:
        return Finding("ImageNet initialisation beats training from scratch.", NOT_RESOLVED,
                       ["only one initialisation was run: nothing to compare"])
    for size in sizes:
        d = paired(runs, Case("imagenet", size).name, Case("scratch", size).name, "miou")
        differences.append(d)
        per_seed = f" (per seed: {', '.join(f'{v:+.4f}' for v in d.values)})" if d.n > 1 else ""
        evidence.append(f"{size} px, ImageNet minus scratch: test mIoU {d.describe()}{per_seed}")
    return Finding("ImageNet initialisation beats training from scratch.", gain_verdict(differences), evidence)


def time_finding(runs: pd.DataFrame) -> Finding:
    inits, sizes = _cases(runs)
    claim = "The initialisation does not change the training time."
    if len(inits) < 2:
        return Finding(claim, NOT_RESOLVED, ["only one initialisation was run: nothing to compare"])
    evidence, ratios = [], []
    logs = runs.assign(log_seconds=np.log(runs["train_seconds"]))
    for size in sizes:
        d = paired(logs, Case("imagenet", size).name, Case("scratch", size).name, "log_seconds")
        ratios.append(d)
        seconds = {i: logs[(logs.case == Case(i, size).name) & (logs.image == "test")]["train_seconds"] for i in inits}
        if d.n < 2:
            bound = "one run: reported, not called"
        else:
            low, high = d.interval
            bound = f"95 % CI {math.exp(low):.3f} to {math.exp(high):.3f} over {d.n} seeds"
        evidence.append(
            f"{size} px: ImageNet {seconds['imagenet'].mean():.1f} s, scratch {seconds['scratch'].mean():.1f} s, "
            f"ratio {math.exp(d.mean):.3f} ({bound})"
        )
    return Finding(claim, time_verdict(ratios), evidence)


def generalisation_notes(runs: pd.DataFrame, split: str, strides: Mapping[int, int]) -> list[str]:
    """The gap between validation and test mIoU, and what the split does to it; ``strides``
    are the training stride of each patch size (patches overlap where one is below its size)."""
    test = runs[runs["image"] == "test"].groupby("case", sort=False)[["val_miou", "miou"]].mean()
    lines = [f"{case}: validation mIoU {row.val_miou:.4f}, test mIoU {row.miou:.4f}, gap {row.val_miou - row.miou:+.4f}"
             for case, row in test.iterrows()]
    gap = float((test["val_miou"] - test["miou"]).mean())
    overlapping = any(stride < size for size, stride in strides.items())
    if split == "random" and overlapping:
        why = ("The patches were split at random and overlap (stride < patch size), so most training patches "
               "share pixels with a validation patch: the validation score is inflated, and part of the gap is "
               "that leak. `experiment.split: blocks` gives whole blocks of the image to validation and drops "
               "every training patch that touches one, which removes the leak; the gap that remains is the shift "
               "from the training image to the test image.")
    elif split == "random":
        why = ("The patches were split at random but do not overlap, so no pixel is in both splits; neighbouring "
               "patches are still alike, which can flatter validation a little. `experiment.split: blocks` keeps "
               "validation blocks apart from the training patches; the gap that remains is the shift from the "
               "training image to the test image.")
    else:
        why = ("The patches were split in blocks: validation shares no pixel with training, so the gap is the shift "
               "from the training image to the test image (and between a patch and a whole-image mosaic).")
    return lines + [f"Mean gap over the cases: {gap:+.4f}. {_what_the_gap_says(gap)} {why}"]


def _what_the_gap_says(gap: float, within: float = 0.01) -> str:
    """A sentence on the sign of the mean validation-minus-test gap, so the text never contradicts the numbers."""
    if gap > within:
        return "Validation scores above the test image."
    if gap < -within:
        return ("Here the test image scores above validation: validation mIoU is counted on single patches, test "
                "mIoU on a mosaic of overlapping windows that sees each pixel with more context, and the test scene "
                "may be the easier one; whatever the split leaks does not show in these numbers.")
    return f"Validation and test agree within {within}."


def findings(runs: pd.DataFrame, budget: Budget, context: str = "") -> list[Finding]:
    return [patch_size_finding(runs, budget, context), init_finding(runs), time_finding(runs)]


Block = tuple[str, object]
"""One piece of the document: ("h1" | "h2", text), ("p", text), ("list", lines) or ("table", frame)."""


def document(runs: pd.DataFrame, split: str, *, strides: Mapping[int, int], steps: dict[int, int] | None = None,
             budget: Budget) -> tuple[list[Finding], list[Block]]:
    """The findings and the conclusions document, as blocks to render (`to_markdown`, `to_html`);
    ``strides`` are the training stride of each patch size, ``steps`` the optimiser steps per
    epoch of each patch size, ``budget`` what every case trained for (`budget.of` the train
    settings)."""
    context = budget_sentence(runs, budget, steps)
    found = findings(runs, budget, context)
    repeats = int(runs["repeat"].nunique())
    labels = case_labels(runs["case"].unique().tolist())
    test = runs[runs["image"] == "test"].groupby("case", sort=False)[["miou", "f1"]].agg(["mean", "std"])
    scores = pd.DataFrame({
        "case": test.index, "label": [labels.get(c, "") for c in test.index],
        "test mIoU": [_mean_sd(test.loc[c, ("miou", "mean")], test.loc[c, ("miou", "std")]) for c in test.index],
        "test weighted F1": [_mean_sd(test.loc[c, ("f1", "mean")], test.loc[c, ("f1", "std")]) for c in test.index],
    })
    blocks: list[Block] = [
        ("h1", "The study's conclusions, checked"),
        ("p", f"{_runs_per_case(repeats, sorted(runs['seed'].unique()))}. {context} "
              "Runs are compared paired by seed; with several seeds a difference counts when its 95 % confidence "
              "interval excludes zero (a paired t-test), so it must exceed the spread between seeds; with one seed "
              "differences are reported, not called. Training times count as equal within 10 %."),
        ("h2", "Test-image scores per case" + (" (mean ± sd over seeds)" if repeats > 1 else "")),
        ("table", scores),
    ]
    for number, finding in enumerate(found, 1):
        blocks += [("h2", f"{number}. {finding.claim}"), ("p", f"Verdict: {finding.verdict}."), ("list", finding.evidence)]
    blocks += [("h2", "What a reviewer asks next: validation against test"),
               ("list", generalisation_notes(runs, split, strides))]
    return found, blocks


def _runs_per_case(repeats: int, seeds: list[int]) -> str:
    if repeats == 1:
        return f"One run per case (seed {seeds[0]})"
    return f"{repeats} runs per case (seeds {', '.join(str(s) for s in seeds)})"


def _mean_sd(mean: float, sd: float) -> str:
    return f"{mean:.4f}" if pd.isna(sd) else f"{mean:.4f} ± {sd:.4f}"


def to_markdown(blocks: list[Block]) -> str:
    rendered = []
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            rendered.append("#" * int(kind[1]) + " " + content)
        elif kind == "list":
            rendered.append("\n".join(f"- {line}" for line in content))
        elif kind == "table":
            rendered.append(content.to_markdown(index=False))
        else:
            rendered.append(f"**{content}**" if content.startswith("Verdict:") else content)
    return "\n\n".join(rendered) + "\n"


def to_html(blocks: list[Block]) -> str:
    """A self-contained HTML page of the document (shown by the Snakemake report)."""
    import html

    rendered = []
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            rendered.append(f"<{kind}>{html.escape(content)}</{kind}>")
        elif kind == "list":
            rendered.append("<ul>" + "".join(f"<li>{_code(html.escape(line))}</li>" for line in content) + "</ul>")
        elif kind == "table":
            rendered.append(content.to_html(index=False, border=0))
        else:
            text = html.escape(content)
            rendered.append(f"<p><strong>{text}</strong></p>" if content.startswith("Verdict:") else f"<p>{text}</p>")
    style = ("body{font-family:sans-serif;max-width:62em;margin:2em auto;line-height:1.45}"
             "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.2em .6em}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>The study's conclusions, checked</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(rendered) + "\n</body></html>\n")


def _code(text: str) -> str:
    """`literal` -> <code>literal</code>, in text already escaped for HTML."""
    import re

    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
