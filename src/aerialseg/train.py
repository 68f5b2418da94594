"""The training loop.

The training image and its label are put on the training device once, as uint8 tensors.
Each epoch's batches (which patches, and with augmentation which symmetry each gets) are
drawn up front from the seeded generator and copied to the device in one go. A step then
finds its batch through a step counter that lives on the device, cuts the patches by
indexing, and adds its loss and confusion counts to tensors on the device: it never waits
for the host. So on CUDA the whole step (gather, augmentation, normalisation, forward,
weighted loss, backward, optimiser step, bookkeeping) is captured once as a CUDA graph and
replayed, one launch per step (`device.GraphedStep`), and validation likewise; the epoch's
figures are read once, at its end. On the CPU the same step functions run eagerly, and the
same config gives the same history run after run.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .class_ids import IGNORE_INDEX
from .device import Compute, GraphedStep, compute_for_training
from .errors import DivergenceError, InputError, first_line
from .files import atomic_path
from .metrics import best_index, mean_iou, overall_accuracy
from .model import ModelSpec, cpu_state, input_transform, read_trusted
from .budget import steps_per_epoch
from .patches import cut

log = logging.getLogger(__name__)

HISTORY_COLUMNS = [
    "epoch", "train_loss", "train_acc", "train_miou", "val_loss", "val_acc", "val_miou", "seconds",
    "steps", "pixels", "partial",
]
"""Per epoch; ``steps`` and ``pixels`` are the optimiser steps taken and training pixels seen so
far, ``partial`` marks a last epoch that a step or pixel budget ended early."""


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int
    lr: float
    seed: int
    optimizer: str = "adam"  # or "adamw"
    weight_decay: float = 0.0
    augment: bool = False  # random flips and transpositions (the 8 symmetries of a square)
    capture: bool = True  # on CUDA, replay the steps as captured CUDA graphs
    resume_seconds: float = 0.0  # at most one resume-state write per this many seconds (0: every epoch)
    budget_steps: int | None = None  # optimiser steps in all (None: epochs x the steps of an epoch)
    precision: str = "auto"  # auto (bf16 on a GPU that has it, else float32), float32 or bf16
    memory_format: str = "auto"  # auto (channels-last on a GPU, contiguous on the CPU), channels_last, contiguous
    progress: bool = True  # a progress bar per epoch (on stderr: the job's log)


@dataclass(frozen=True)
class Resume:
    """Where a run keeps its training state (``path``) and the key (``fingerprint``) of what
    made it: a state saved under another key is not resumed from."""

    path: str | Path
    fingerprint: str


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_tensors(image: np.ndarray, ids: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W, C) uint8 image and (H, W) uint8 ids -> (C, H, W) and (H, W) uint8 tensors on device."""
    image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(device)
    return image_t, torch.from_numpy(np.ascontiguousarray(ids)).to(device)


def gather(image: torch.Tensor, labels: torch.Tensor, corners: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut patches at ``corners`` (B, 2: row, col): images (B, C, s, s), labels (B, s, s)."""
    return cut(image, corners, size), cut(labels, corners, size)


def add_confusion(counts: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
    """Add a batch to ``counts``, a flat (K * K + 1) confusion matrix (truth-major) whose
    last cell collects the ignored pixels; in place, with no shape that depends on the data."""
    n = logits.shape[1]
    target = target.long()
    predicted = logits.max(1).indices  # argmax's ids (the first of ties), 20x faster than argmax(1) on the CPU
    cell = torch.where(target == IGNORE_INDEX, n * n, target * n + predicted).flatten()
    counts.index_add_(0, cell, torch.ones_like(cell))


def weighted_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-weighted cross-entropy as (sum of w_y * loss, sum of w_y) over non-ignored pixels.

    Their ratio is PyTorch's weighted mean; keeping both lets epochs average over pixels
    rather than over batches, and a batch of only ignored pixels contributes nothing.
    """
    target = target.long()
    loss = torch.nn.functional.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE_INDEX, reduction="sum")
    keep = target != IGNORE_INDEX
    if target.is_cuda:  # no shape that depends on the data: capturable, no host sync
        return loss, torch.where(keep, weight[target.masked_fill(~keep, 0)], 0.0).sum()
    return loss, weight[target[keep]].sum()  # the kept pixels in order: the CPU's float sum, as ever


def augment(x: torch.Tensor, y: torch.Tensor, flags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one symmetry of the square to each patch: ``flags`` (3, B) say whether to
    transpose, then flip left-right, then flip up-down; image and label get the same one."""
    for flag, op in zip(flags, (lambda t: t.transpose(-1, -2), lambda t: t.flip(-1), lambda t: t.flip(-2))):
        x = torch.where(flag.view(-1, 1, 1, 1), op(x), x)
        y = torch.where(flag.view(-1, 1, 1), op(y), y)
    return x, y


def draw_symmetries(batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """The (3, B) flags of `augment`, each true with probability 1/2."""
    return torch.rand(3, batch_size, generator=generator) < 0.5


def make_optimizer(model: torch.nn.Module, settings: TrainSettings, device: torch.device | None = None,
                   **options) -> torch.optim.Optimizer:
    """Adam or AdamW. When its steps will be captured (CUDA with ``settings.capture``) its
    state lives on the device (``capturable``); eager steps keep the faster default, so an
    eager run, and the eager baseline of the benchmarks, pay nothing for capture. ``options``
    go to the optimizer as they are (the benchmarks try ``fused=True``)."""
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    extra = {"capturable": True} if device is not None and device.type == "cuda" and settings.capture else {}
    extra.update(options)
    return kinds[settings.optimizer](model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay, **extra)


class _Batches:
    """The tensors that the steps of an epoch read and write in place, on the device: the
    corners of every batch (with augmentation their symmetry flags, in validation which
    patches are padding), the step counter, each step's loss and the confusion counts."""

    def __init__(self, steps: int, batch: int, n_classes: int, device: torch.device, loss_terms: int):
        self.steps, self.batch, self.n_classes = steps, batch, n_classes
        self.corners = torch.zeros((steps, batch, 2), dtype=torch.long, device=device)
        self.flags = torch.zeros((steps, 3, batch), dtype=torch.bool, device=device)
        self.valid = torch.ones((steps, batch), dtype=torch.bool, device=device)
        self.step = torch.zeros(1, dtype=torch.long, device=device)
        self.losses = torch.zeros((steps, loss_terms), dtype=torch.float32, device=device)
        self.counts = torch.zeros(n_classes * n_classes + 1, dtype=torch.long, device=device)

    def start(self, corners: torch.Tensor, flags: torch.Tensor | None = None, valid: torch.Tensor | None = None) -> None:
        self.corners.copy_(corners.view(self.steps, self.batch, 2))
        if flags is not None:
            self.flags.copy_(flags)
        if valid is not None:
            self.valid.copy_(valid.view(self.steps, self.batch))
        self.step.zero_()
        self.losses.zero_()
        self.counts.zero_()

    def current(self, tensor: torch.Tensor) -> torch.Tensor:
        """This step's slice of a per-step tensor, chosen on the device."""
        return tensor.index_select(0, self.step)[0]

    def record(self, losses: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        self.losses.index_copy_(0, self.step, losses.detach().view(1, -1))
        add_confusion(self.counts, logits.detach(), target)
        self.step += 1

    def matrix(self) -> np.ndarray:
        """The (K, K) confusion matrix of the epoch so far (rows: truth), on the host."""
        k = self.n_classes
        return self.counts[: k * k].view(k, k).cpu().numpy()


@dataclass(frozen=True)
class TrainingData:
    """What a run learns from: the training image (H, W, C) uint8 and its class ids (H, W),
    the patch index (row, col, split), the patch size and the loss's class weights."""

    image: np.ndarray
    ids: np.ndarray
    index: pd.DataFrame
    size: int
    class_weights: list[float]


@dataclass(frozen=True)
class StepInputs:
    """What every step reads: the model and its input transform, the image and label on the
    device, the patch size, the class weights of the loss, and how the model runs."""

    model: torch.nn.Module
    prepare: Callable[[torch.Tensor], torch.Tensor]
    image: torch.Tensor
    labels: torch.Tensor
    size: int
    weight: torch.Tensor
    compute: Compute


def _patches(batches: _Batches, inputs: StepInputs) -> tuple[torch.Tensor, torch.Tensor]:
    """The image and label patches of the batch that ``batches.step`` points at."""
    return gather(inputs.image, inputs.labels, batches.current(batches.corners), inputs.size)


def _train_step(batches: _Batches, inputs: StepInputs, optimizer: torch.optim.Optimizer) -> None:
    """One optimiser step on the batch that ``batches.step`` points at, its patches as they
    are; no host sync."""
    _learn(batches, inputs, optimizer, *_patches(batches, inputs))


def _augmented_train_step(batches: _Batches, inputs: StepInputs, optimizer: torch.optim.Optimizer) -> None:
    """`_train_step` with each patch in the symmetry its flags in ``batches`` give (`augment`)."""
    x, y = _patches(batches, inputs)
    _learn(batches, inputs, optimizer, *augment(x, y, batches.current(batches.flags)))


def _learn(batches: _Batches, inputs: StepInputs, optimizer: torch.optim.Optimizer, x: torch.Tensor,
           y: torch.Tensor) -> None:
    """The optimiser step of patches ``x`` and labels ``y``; their loss and confusion counts
    go to ``batches``."""
    with inputs.compute.autocast():
        logits = inputs.model(inputs.prepare(x))
    logits = logits.float()
    loss_sum, weight_sum = weighted_loss(logits, y, inputs.weight)
    loss = loss_sum / weight_sum.clamp_min(1e-12)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    batches.record(loss, logits, y)


@torch.no_grad()
def _val_step(batches: _Batches, inputs: StepInputs) -> None:
    """Validation loss terms and confusion counts of one batch; padding patches are ignored."""
    x, y = _patches(batches, inputs)
    y = torch.where(batches.current(batches.valid).view(-1, 1, 1), y, IGNORE_INDEX)
    with inputs.compute.autocast():
        logits = inputs.model(inputs.prepare(x)).float()
    loss_sum, weight_sum = weighted_loss(logits, y, inputs.weight)
    batches.record(torch.stack([loss_sum, weight_sum]), logits, y)


class Steps:
    """The training and validation steps of one run, and the device tensors they work on.

    Fixed shapes: the trailing partial training batch is dropped (fewer patches than a
    batch make one smaller batch), so a batch of one never reaches BatchNorm; the last
    validation batch is padded with ignored patches, so every validation patch counts.
    Each step is a `GraphedStep`: captured as a CUDA graph on CUDA, eager on the CPU.
    """

    def __init__(self, model: torch.nn.Module, spec: ModelSpec, data: TrainingData, settings: TrainSettings,
                 optimizer: torch.optim.Optimizer, device: torch.device):
        image_t, labels_t = to_tensors(data.image, data.ids, device)
        index = data.index
        corners = {
            split: torch.tensor(index.loc[index.split == split, ["row", "col"]].to_numpy(), dtype=torch.long, device=device)
            for split in ("train", "val")
        }
        self.n_train, n_val = len(corners["train"]), len(corners["val"])
        if self.n_train < 2:
            raise ValueError(f"only {self.n_train} training patch(es): need at least 2 for BatchNorm")
        self.model, self.settings, self.device, self.train_corners = model, settings, device, corners["train"]
        self.size, self.n_classes = data.size, spec.n_classes
        batch = min(settings.batch_size, self.n_train)
        self.train = _Batches(steps_per_epoch(self.n_train, settings.batch_size), batch, spec.n_classes, device, loss_terms=1)
        self.val = _Batches(-(-n_val // settings.batch_size), settings.batch_size, spec.n_classes, device, loss_terms=2)
        padding = self.val.steps * self.val.batch - n_val
        self.val_corners = torch.cat([corners["val"], corners["val"][:1].expand(padding, 2)])
        self.val_valid = torch.arange(self.val.steps * self.val.batch, device=device) < n_val
        weight = torch.tensor(data.class_weights, dtype=torch.float32, device=device)
        how = compute_for_training(device, settings.precision, settings.memory_format)
        inputs = StepInputs(model, input_transform(spec, device, how), image_t, labels_t, data.size, weight, how)
        self.compute = how
        train_step = _augmented_train_step if settings.augment else _train_step
        eager_because = None if settings.capture else "capture is turned off (train.capture: false)"
        self.train_step = GraphedStep(partial(train_step, self.train, inputs, optimizer), device,
                                      eager_because=eager_because, name="training step")
        self.val_step = GraphedStep(partial(_val_step, self.val, inputs), device, eager_because=eager_because,
                                    name="validation step")

    def draw_epoch(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """An epoch's batches from the seeded generator: the corners of every step's patches
        and, with augmentation, their symmetry flags."""
        train = self.train
        order = torch.randperm(self.n_train, generator=generator)[: train.steps * train.batch]
        flags = torch.stack([draw_symmetries(train.batch, generator) for _ in range(train.steps)]) if self.settings.augment else None
        return self.train_corners[order.to(self.device)], flags

    def train_epoch(self, corners: torch.Tensor, flags: torch.Tensor | None, desc: str = "epoch",
                    n_steps: int | None = None) -> dict[str, float]:
        """Run the epoch's training steps, or its first ``n_steps`` (a budget that ends inside
        the epoch); their loss, accuracy and mIoU."""
        n_steps = self.train.steps if n_steps is None else n_steps
        self.model.train()
        self.train.start(corners, flags)
        for _ in tqdm(range(n_steps), desc=desc, unit="batch", disable=not self.settings.progress, leave=False):
            self.train_step()
        return _train_figures(self.train, n_steps)

    def validate(self) -> dict[str, float]:
        """Run every validation step; the validation loss, accuracy and mIoU."""
        self.model.eval()
        self.val.start(self.val_corners, valid=self.val_valid)
        for _ in range(self.val.steps):
            self.val_step()
        return _val_figures(self.val)


def fit(model: torch.nn.Module, spec: ModelSpec, data: TrainingData, settings: TrainSettings, device: torch.device,
        resume: Resume | None = None) -> tuple[pd.DataFrame, dict, int]:
    """Train ``model`` on the patches of ``data``.

    Returns the per-epoch history, the state dict of the best epoch by validation mIoU, and
    that epoch's number. With ``resume``, the full training state is saved at its path at the
    end of an epoch (at most once per ``settings.resume_seconds``), and a run that finds a
    state with the same fingerprint continues after its last saved epoch, ending exactly as
    an uninterrupted run would. A loss that is not finite, or has exploded, raises
    `DivergenceError` at the end of its epoch.
    """
    model = compute_for_training(device, settings.precision, settings.memory_format).format(model.to(device))
    optimizer = make_optimizer(model, settings, device)
    steps = Steps(model, spec, data, settings, optimizer, device)
    generator = torch.Generator().manual_seed(settings.seed)
    total = settings.budget_steps if settings.budget_steps is not None else settings.epochs * steps.train.steps
    run = _RunState(model, optimizer, generator, -(-total // steps.train.steps))  # the last epoch partial where
    if resume is not None:                                                       # the budget ends inside it
        run.restore(resume.path, resume.fingerprint, device)
    log.info("model in %s on %s", steps.compute.describe(), device)
    try:
        _epochs(run, steps, total, resume)
    finally:  # how the steps ran is evidence also when the run fails
        log.info("training step: %s", steps.train_step.summary())
        log.info("validation step: %s", steps.val_step.summary())
    return pd.DataFrame(run.rows, columns=HISTORY_COLUMNS), run.best_state, run.best_epoch


def _epochs(run: "_RunState", steps: Steps, total: int, resume: Resume | None) -> None:
    """The epochs still to train (all, or those after a resumed state), ``total`` steps in all."""
    settings, saved = steps.settings, time.perf_counter()
    per_step = steps.train.batch * steps.size * steps.size  # training pixels of one step
    for epoch in range(len(run.rows) + 1, run.epochs + 1):
        start = time.perf_counter()
        done = run.rows[-1]["steps"] if run.rows else 0
        n_steps = min(steps.train.steps, total - done)
        train_row = steps.train_epoch(*steps.draw_epoch(run.generator), desc=f"epoch {epoch}", n_steps=n_steps)
        row = {"epoch": epoch, **train_row, **steps.validate(), "seconds": time.perf_counter() - start,
               "steps": done + n_steps, "pixels": (done + n_steps) * per_step, "partial": n_steps < steps.train.steps}
        _log_epoch(row, run.epochs, steps.train_step.mode)
        _check_diverged(row, steps.n_classes, settings)
        run.finish_epoch(row)
        if resume is not None and time.perf_counter() - saved >= settings.resume_seconds:
            run.save(resume.path, resume.fingerprint)
            saved = time.perf_counter()


def _log_epoch(row: dict, epochs: int, mode: str) -> None:
    log.info(
        "epoch %d/%d%s: train loss %.4f acc %.4f mIoU %.4f | val loss %.4f acc %.4f mIoU %.4f | %.1f s (%s steps)",
        row["epoch"], epochs, f" (partial: {row['steps']} steps in all)" if row["partial"] else "",
        row["train_loss"], row["train_acc"], row["train_miou"], row["val_loss"], row["val_acc"], row["val_miou"],
        row["seconds"], mode,
    )


def _train_figures(train: _Batches, n_steps: int | None = None) -> dict[str, float]:
    """Mean of the batches' losses (as the float64 mean of their float32 values; the first
    ``n_steps`` batches of a partial epoch), accuracy, mIoU."""
    cm = train.matrix()
    losses = train.losses[: n_steps if n_steps is not None else train.steps, 0].cpu().numpy().astype(np.float64)
    return {"train_loss": float(np.mean(losses)), "train_acc": overall_accuracy(cm), "train_miou": mean_iou(cm)}


def _val_figures(val: _Batches) -> dict[str, float]:
    """The validation loss over all pixels (weighted as in training), accuracy and mIoU."""
    cm = val.matrix()
    loss_sum = weight_sum = 0.0
    for batch_loss, batch_weight in val.losses.cpu().tolist():  # summed in float64, batch by batch
        loss_sum += batch_loss
        weight_sum += batch_weight
    return {"val_loss": loss_sum / weight_sum if weight_sum else float("nan"),
            "val_acc": overall_accuracy(cm), "val_miou": mean_iou(cm)}


EXPLODED = 100
"""A training loss above this many times ln(K), the loss of a uniform guess over K classes,
means the logits are hundreds of units off: the run has blown up even if it is finite."""


def _check_diverged(row: dict, n_classes: int, settings: TrainSettings) -> None:
    """Stop a run whose loss is no longer a number, or has exploded, before it writes a model."""
    uniform = float(np.log(n_classes))
    if not (np.isfinite(row["train_loss"]) and np.isfinite(row["val_loss"])):
        what = f"the training loss is {row['train_loss']:.4g} and the validation loss {row['val_loss']:.4g}"
    elif row["train_loss"] > EXPLODED * uniform:
        what = (f"the training loss is {row['train_loss']:.4g}, more than {EXPLODED} times the {uniform:.3g} "
                "of a uniform guess")
    else:
        return
    raise DivergenceError(
        f"training diverged in epoch {row['epoch']}: {what}, so no model is written. Try a smaller "
        f"learning rate (train.lr is {settings.lr:g}; the study uses 0.001), and check that the images are "
        "not constant or corrupt."
    )


class _RunState:
    """Everything a run needs to continue exactly where it stopped."""

    def __init__(self, model, optimizer, generator, epochs: int):
        self.model, self.optimizer, self.generator, self.epochs = model, optimizer, generator, epochs
        self.rows: list[dict] = []
        self.best_state: dict | None = None
        self.best_epoch = 0

    def finish_epoch(self, row: dict) -> None:
        self.rows.append(row)
        if best_index([r["val_miou"] for r in self.rows]) == len(self.rows) - 1:  # this epoch is the best so far
            self.best_epoch = row["epoch"]
            self.best_state = cpu_state(self.model)

    def save(self, path, fingerprint: str) -> None:
        state = {
            "fingerprint": fingerprint,
            "rows": self.rows,
            "best_state": self.best_state, "best_epoch": self.best_epoch,
            "model": cpu_state(self.model),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    def restore(self, path, fingerprint: str, device: torch.device) -> None:
        """Continue from the state saved at ``path``, if there is one that can be trusted and
        belongs to this run. A state that cannot be read, holds anything but tensors and plain
        data (it would run code if unpickled: it is never unpickled so), does not have the
        shape this class writes, or belongs to another configuration or input is logged by
        path and discarded: training starts from epoch 1 and never stays stuck on it."""
        path = Path(path)
        if not path.is_file():
            return
        try:
            state = read_trusted(path, what="resume state", remedy="it is discarded")
            problem = _state_problem(state, fingerprint)
        except InputError as error:
            state, problem = None, str(error)
        if problem is None:
            fresh = cpu_state(self.model), copy.deepcopy(self.optimizer.state_dict()), self.generator.get_state()
            try:
                self._load(state, device)
            except (KeyError, TypeError, ValueError, RuntimeError) as error:
                problem = f"does not fit this run's model or optimiser ({type(error).__name__}: {first_line(error)})"
                self.model.load_state_dict(fresh[0])  # nothing of a half-loaded state stays
                self.optimizer.load_state_dict(fresh[1])
                self.generator.set_state(fresh[2])
                self.rows, self.best_state, self.best_epoch = [], None, 0
        if problem is not None:
            log.warning("%s; starting from epoch 1", problem if str(path) in problem else f"{path}: {problem}")
            path.unlink(missing_ok=True)
            return
        done = len(self.rows)
        log.info("resuming from %s: %d epoch(s) done, %s", path, done,
                 "all of them: writing the outputs" if done >= self.epochs else f"continuing at epoch {done + 1}")

    def _load(self, state: dict, device: torch.device) -> None:
        ours = {name: value.shape for name, value in self.model.state_dict().items()}
        best = state["best_state"]
        if best is not None and (not isinstance(best, dict) or {k: getattr(v, "shape", None) for k, v in best.items()} != ours):
            raise ValueError("its best model does not fit this run's model")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.rows = state["rows"]
        self.best_state, self.best_epoch = state["best_state"], state["best_epoch"]


STATE_KEYS = {"fingerprint", "rows", "best_state", "best_epoch", "model", "optimizer", "generator", "torch_rng",
              "cuda_rng"}
"""The allow-list of what a resume state holds (`_RunState.save`)."""


def _state_problem(state, fingerprint: str) -> str | None:
    """Why a loaded resume state cannot be used, or None."""
    if not isinstance(state, dict) or set(state) != STATE_KEYS:
        keys = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        return f"not a resume state written by aerialseg (it holds {keys})"
    if state["fingerprint"] != fingerprint:
        return "belongs to another configuration or input"
    tensors = (state["generator"], state["torch_rng"])
    if not all(isinstance(t, torch.Tensor) for t in tensors) or not isinstance(state["rows"], list) \
            or not all(isinstance(row, dict) and set(row) == set(HISTORY_COLUMNS) for row in state["rows"]):
        return "its history or random generator states are malformed"
    return None
