"""The training loop.

The training image and its label are put on the training device once, as uint8 tensors;
each batch is gathered from them by indexing (no per-patch PIL, no DataLoader workers), so
the loop runs at the speed of the model.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .config import IGNORE_INDEX
from .files import atomic_path
from .metrics import mean_iou
from .model import ModelSpec, cpu_state, normalize

log = logging.getLogger(__name__)

HISTORY_COLUMNS = [
    "epoch", "train_loss", "train_acc", "train_miou", "val_loss", "val_acc", "val_miou", "seconds",
]


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int
    lr: float
    seed: int
    optimizer: str = "adam"  # or "adamw"
    weight_decay: float = 0.0
    augment: bool = False  # random flips and transpositions (the 8 symmetries of a square)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


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
    offsets = torch.arange(size, device=image.device)
    rows = (corners[:, 0, None] + offsets)[:, :, None]  # (B, s, 1)
    cols = (corners[:, 1, None] + offsets)[:, None, :]  # (B, 1, s)
    patches = image[:, rows, cols].permute(1, 0, 2, 3)  # (C, B, s, s) -> (B, C, s, s)
    return patches, labels[rows, cols]


class ConfusionMeter:
    """Accumulates a confusion matrix on the device; ignored pixels are left out."""

    def __init__(self, n_classes: int, device: torch.device):
        self.n = n_classes
        self.counts = torch.zeros(n_classes * n_classes, dtype=torch.int64, device=device)

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        keep = target != IGNORE_INDEX
        truth = target[keep].long()
        pred = logits.argmax(1)[keep]
        self.counts += torch.bincount(truth * self.n + pred, minlength=self.n * self.n)

    def matrix(self) -> np.ndarray:
        return self.counts.view(self.n, self.n).cpu().numpy()

    def accuracy(self) -> float:
        cm = self.matrix()
        return float(np.trace(cm) / cm.sum()) if cm.sum() else float("nan")


def weighted_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-weighted cross-entropy as (sum of w_y * loss, sum of w_y) over non-ignored pixels.

    Their ratio is PyTorch's weighted mean; keeping both lets epochs average over pixels
    rather than over batches, and a batch of only ignored pixels contributes nothing.
    """
    target = target.long()
    loss = torch.nn.functional.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE_INDEX, reduction="sum")
    keep = target != IGNORE_INDEX
    return loss, weight[target[keep]].sum()


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    """Index batches; with a generator shuffled and without a trailing partial batch, so a
    batch of one never reaches BatchNorm."""
    if generator is None:
        order = torch.arange(n)
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    order = torch.randperm(n, generator=generator)
    full = n // batch_size
    if full == 0:  # fewer patches than a batch: train on all of them at once
        return [order]
    return [order[i * batch_size : (i + 1) * batch_size] for i in range(full)]


def augment(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one random symmetry of the square to each patch (transpose, then flips), on the
    patches' device; image and label get the same one."""
    draws = torch.rand(3, len(x), generator=generator).to(x.device) < 0.5
    for flag, op in zip(draws, (lambda t: t.transpose(-1, -2), lambda t: t.flip(-1), lambda t: t.flip(-2))):
        x = torch.where(flag.view(-1, 1, 1, 1), op(x), x)
        y = torch.where(flag.view(-1, 1, 1), op(y), y)
    return x, y


def make_optimizer(model: torch.nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    return kinds[settings.optimizer](model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)


def fit(
    model: torch.nn.Module,
    spec: ModelSpec,
    image: np.ndarray,
    ids: np.ndarray,
    index: pd.DataFrame,
    size: int,
    class_weights: list[float],
    settings: TrainSettings,
    device: torch.device,
    progress: bool = True,
    resume_path: str | Path | None = None,
    fingerprint: str = "",
) -> tuple[pd.DataFrame, dict, int]:
    """Train ``model`` on the patches of ``index`` (row, col, split).

    Returns the per-epoch history, the state dict of the best epoch by validation mIoU, and
    that epoch's number. With ``resume_path``, the full training state is saved there after
    every epoch, and a run that finds a state with the same ``fingerprint`` continues after
    its last finished epoch, ending exactly as an uninterrupted run would.
    """
    image_t, labels_t = to_tensors(image, ids, device)
    corners = {
        split: torch.tensor(index.loc[index.split == split, ["row", "col"]].to_numpy(), device=device)
        for split in ("train", "val")
    }
    if len(corners["train"]) < 2:
        raise ValueError(f"only {len(corners['train'])} training patch(es): need at least 2 for BatchNorm")
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    model.to(device)
    weight = torch.tensor(class_weights, dtype=torch.float32, device=device)
    optimizer = make_optimizer(model, settings)
    generator = torch.Generator().manual_seed(settings.seed)
    run = _RunState(model, optimizer, generator)
    if resume_path is not None:
        run.restore(resume_path, fingerprint, device)

    for epoch in range(len(run.rows) + 1, settings.epochs + 1):
        start = time.perf_counter()
        train = _train_epoch(model, spec, image_t, labels_t, corners["train"], size, weight,
                             optimizer, settings, generator, epoch, progress)
        val = evaluate(model, spec, image_t, labels_t, corners["val"], size, weight, settings.batch_size)
        row = {"epoch": epoch, **train, **val, "seconds": time.perf_counter() - start}
        log.info(
            "epoch %d/%d: train loss %.4f acc %.4f mIoU %.4f | val loss %.4f acc %.4f mIoU %.4f | %.1f s",
            epoch, settings.epochs, row["train_loss"], row["train_acc"], row["train_miou"],
            row["val_loss"], row["val_acc"], row["val_miou"], row["seconds"],
        )
        run.finish_epoch(row)
        if resume_path is not None:
            run.save(resume_path, fingerprint)
    return pd.DataFrame(run.rows, columns=HISTORY_COLUMNS), run.best_state, run.best_epoch


class _RunState:
    """Everything a run needs to continue exactly where it stopped."""

    def __init__(self, model, optimizer, generator):
        self.model, self.optimizer, self.generator = model, optimizer, generator
        self.rows: list[dict] = []
        self.best_state: dict | None = None
        self.best_epoch, self.best_score = 0, -np.inf

    def finish_epoch(self, row: dict) -> None:
        self.rows.append(row)
        score = row["val_miou"] if np.isfinite(row["val_miou"]) else -np.inf
        if self.best_state is None or score > self.best_score:  # the same rule as tables.best_epoch
            self.best_score, self.best_epoch = score, row["epoch"]
            self.best_state = cpu_state(self.model)

    def save(self, path, fingerprint: str) -> None:
        state = {
            "fingerprint": fingerprint,
            "rows": self.rows,
            "best_state": self.best_state, "best_epoch": self.best_epoch, "best_score": self.best_score,
            "model": cpu_state(self.model),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    def restore(self, path, fingerprint: str, device: torch.device) -> None:
        path = Path(path)
        if not path.is_file():
            return
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("fingerprint") != fingerprint:
            log.info("%s belongs to another configuration or input: starting from epoch 1", path)
            return
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.rows = state["rows"]
        self.best_state, self.best_epoch, self.best_score = state["best_state"], state["best_epoch"], state["best_score"]
        log.info("resuming from %s: %d epoch(s) done, continuing at epoch %d", path, len(self.rows), len(self.rows) + 1)


def _train_epoch(model, spec, image, labels, corners, size, weight, optimizer, settings,
                 generator, epoch, progress) -> dict[str, float]:
    model.train()
    meter = ConfusionMeter(spec.n_classes, image.device)
    losses = []
    batches = _batches(len(corners), settings.batch_size, generator)
    for batch in tqdm(batches, desc=f"epoch {epoch}", unit="batch", disable=not progress, leave=False):
        x, y = gather(image, labels, corners[batch.to(corners.device)], size)
        if settings.augment:
            x, y = augment(x, y, generator)
        with autocast(image.device):
            logits = model(prepare(x, spec))
        loss_sum, weight_sum = weighted_loss(logits.float(), y, weight)
        loss = loss_sum / weight_sum.clamp_min(1e-12)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        meter.update(logits.detach(), y)
    return {"train_loss": float(np.mean(losses)), "train_acc": meter.accuracy(), "train_miou": mean_iou(meter.matrix())}


def autocast(device: torch.device):
    """bf16 autocast on CUDA; a no-op on the CPU, so CPU runs stay in float32 and exact."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def prepare(x: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """uint8 patches -> the model's normalised input (channels-last on CUDA)."""
    x = normalize(x, spec)
    return x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x


@torch.no_grad()
def evaluate(model, spec, image, labels, corners, size, weight, batch_size) -> dict[str, float]:
    """Validation loss (weighted as in training), pixel accuracy and mIoU over the patches."""
    model.eval()
    meter = ConfusionMeter(spec.n_classes, image.device)
    loss_sum, weight_sum = 0.0, 0.0
    for batch in _batches(len(corners), batch_size, None):
        x, y = gather(image, labels, corners[batch.to(corners.device)], size)
        with autocast(image.device):
            logits = model(prepare(x, spec)).float()
        batch_loss, batch_weight = weighted_loss(logits, y, weight)
        loss_sum += float(batch_loss)
        weight_sum += float(batch_weight)
        meter.update(logits, y)
    return {
        "val_loss": loss_sum / weight_sum if weight_sum else float("nan"),
        "val_acc": meter.accuracy(),
        "val_miou": mean_iou(meter.matrix()),
    }
