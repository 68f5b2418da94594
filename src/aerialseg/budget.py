"""The training budget (``train.budget``): what every case trains for, one class per mode.

Cases of different patch sizes see different numbers of patches an epoch, so "the same
training" must say what is held equal: ``epochs`` (each case its own epochs), ``steps`` (the
optimiser steps of the reference, the smallest patch size, in ``train.epochs`` epochs) or
``pixels`` (as many steps as it takes to see the reference's training pixels). The mode is
decided here only: `of` builds the budget from a job's settings; training asks it for a case's
steps (`Budget.steps`), the conclusions for what it holds equal and what it mixes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimiser steps of an epoch: full batches only (the trailing partial batch is dropped,
    so a batch of one never reaches BatchNorm); fewer patches than a batch make one batch."""
    return n_train // min(batch_size, n_train)


@dataclass(frozen=True)
class Reference:
    """The patches a step or pixel budget is counted in: the smallest patch size and how many
    training patches it has."""

    size: int
    n_train: int


@dataclass(frozen=True)
class Budget:
    """What every case trains for: ``epochs`` epochs of the reference patches (or of its own,
    `Epochs`) in batches of ``batch_size``."""

    epochs: int
    batch_size: int
    name: ClassVar[str]
    held_equal: ClassVar[str]
    mixes: ClassVar[str]

    def steps(self, size: int, n_train: int, reference: Reference | None) -> int:
        """The optimiser steps of a case of patch ``size`` with ``n_train`` training patches."""
        raise NotImplementedError

    def reference_steps(self, reference: Reference) -> int:
        return self.epochs * steps_per_epoch(reference.n_train, self.batch_size)

    def describe(self, reference: str, per_epoch: str = "") -> str:
        """What every case trained for, in words (``reference``: the reference patches, e.g. "32 px")."""
        raise NotImplementedError


class Epochs(Budget):
    name, held_equal = "epochs", "equal epochs"
    mixes = ("At equal epochs a bigger patch also means more pixels per step and, without overlap, fewer steps: "
             "context, steps and pixels seen change together (train.budget: steps or pixels holds one of them equal).")

    def steps(self, size: int, n_train: int, reference: Reference | None = None) -> int:
        return self.epochs * steps_per_epoch(n_train, self.batch_size)

    def describe(self, reference: str, per_epoch: str = "") -> str:
        return f"every case trained {self.epochs} epochs{per_epoch}"


class Steps(Budget):
    name, held_equal = "steps", "equal optimiser steps"
    mixes = "At equal steps a bigger patch sees more pixels per step: context and pixels seen change together."

    def steps(self, size: int, n_train: int, reference: Reference) -> int:
        return self.reference_steps(reference)

    def describe(self, reference: str, per_epoch: str = "") -> str:
        return f"every case trained as many optimiser steps as the {reference} patches take in {self.epochs} epochs"


class Pixels(Budget):
    name, held_equal = "pixels", "equal training pixels"
    mixes = "At equal pixels a bigger patch takes fewer, larger steps: context and steps change together."

    def steps(self, size: int, n_train: int, reference: Reference) -> int:
        """Rounded up, so that no case sees fewer pixels than the reference; a batch is at most
        the patches there are."""
        pixels = self.reference_steps(reference) * min(self.batch_size, reference.n_train) * reference.size**2
        return -(-pixels // (min(self.batch_size, n_train) * size**2))

    def describe(self, reference: str, per_epoch: str = "") -> str:
        return f"every case saw as many training pixels as the {reference} patches see in {self.epochs} epochs"


MODES: dict[str, type[Budget]] = {kind.name: kind for kind in (Epochs, Steps, Pixels)}


def of(train: dict) -> Budget:
    """The budget of a job's ``train`` settings (``budget``, ``epochs``, ``batch_size``)."""
    if train["budget"] not in MODES:
        raise ValueError(f"unknown train.budget {train['budget']!r}: expected one of {', '.join(MODES)}")
    return MODES[train["budget"]](train["epochs"], train["batch_size"])


def reference_size(train: dict, patch_sizes) -> int | None:
    """The patch size whose epochs set a step or pixel budget (the smallest); None for the
    epochs budget, which needs no reference."""
    return None if train["budget"] == Epochs.name else min(patch_sizes)
