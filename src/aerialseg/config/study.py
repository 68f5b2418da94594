"""The study's objects, as a validated config gives them: its cases (an initialisation and
a patch size) and runs (a case and a repeat, with its seed), the tiles of each split and the
images to map, and the classes. Where their files go is `layout`'s."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from ..class_ids import IGNORE_INDEX  # noqa: F401  (part of the study's vocabulary)

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Case:
    """One training run of the study: an initialisation and a patch size."""

    init: str
    size: int

    @property
    def name(self) -> str:
        return f"{self.init}_p{self.size}"

    @classmethod
    def parse(cls, name: str) -> "Case":
        init, _, size = name.rpartition("_p")
        if not init or not size.isdigit():
            raise ValueError(f"case name {name!r} is not of the form '{{init}}_p{{size}}'")
        return cls(init, int(size))


@dataclass(frozen=True)
class Run:
    """One training run: a case trained with the seed of its repeat (1 is the study's run).

    `layout.run_dir` is where the run's files live; the rules build every path of a run from
    it and pass the run's case and repeat to the package, which never parses them back out of
    a path.
    """

    case: Case
    repeat: int = 1

    def __post_init__(self):
        if self.repeat < 1:
            raise ValueError(f"repeat {self.repeat}: repeats count from 1")

    @property
    def label(self) -> str:
        """How messages name the run: the case, with its repeat when that is not the first."""
        return self.case.name if self.repeat == 1 else f"{self.case.name} (repeat {self.repeat})"


@dataclass(frozen=True)
class Tile:
    """One image of a split with its label (None for an image to map), named after its file.
    ``folder`` is where its outputs go below the split's folder (`layout.tile_file`): "" when
    the split is one image/label pair (the study's layout), the tile's name when the split
    lists tiles."""

    name: str
    image: str
    label: str | None = None
    folder: str = ""


# --- cases and runs ----------------------------------------------------------------------


def cases(config: dict) -> list[Case]:
    """The study's cases, initialisation-major: imagenet_p32, imagenet_p64, ..."""
    experiment = config["experiment"]
    return [Case(init, size) for init in experiment["inits"] for size in experiment["patch_sizes"]]


def repeats(config: dict) -> list[int]:
    """The repeats of every case, 1..experiment.repeats (1 is the study's run)."""
    return list(range(1, config["experiment"]["repeats"] + 1))


def repeat_seed(config: dict, repeat: int) -> int:
    """Repeat r trains with seed experiment.seed + r - 1; the patch split keeps experiment.seed."""
    return config["experiment"]["seed"] + repeat - 1


def runs(config: dict) -> list[Run]:
    """Every run of the study: each case, each repeat (repeat-major)."""
    return [Run(case, repeat) for repeat in repeats(config) for case in cases(config)]


def map_cases(config: dict) -> list[Case] | None:
    """The cases that map ``data.predict``: those ``predict.cases`` lists, or None for the
    case with the best validation mIoU (known once the study has run)."""
    return [Case.parse(name) for name in config["predict"]["cases"]] or None


# --- tiles and images to map -------------------------------------------------------------


def tiled(config: dict, split: str) -> bool:
    """Whether ``data.{split}`` lists tiles (rather than being one image/label pair)."""
    return isinstance(config["data"][split], list)


def tiles(config: dict, split: str) -> list[Tile]:
    """The tiles of a split (``train`` or ``test``), in config order."""
    if not tiled(config, split):
        pair = config["data"][split]
        return [Tile(Path(pair["image"]).stem, pair["image"], pair["label"])]
    return [Tile(Path(p["image"]).stem, p["image"], p["label"], Path(p["image"]).stem) for p in config["data"][split]]


def split_tiles(config: dict) -> dict[str, list[Tile]]:
    """The tiles of both splits: {split: [Tile, ...]}."""
    return {split: tiles(config, split) for split in SPLITS}


def maps(config: dict) -> list[Tile]:
    """The images to map (``data.predict``, glob patterns expanded, sorted), without labels."""
    found = [path for pattern in config["data"]["predict"] for path in matching_files(pattern)]
    return [Tile(Path(path).stem, path) for path in found]


def matching_files(pattern: str) -> list[str]:
    """The files a glob pattern matches, normalised and sorted; a path without wildcards,
    itself if it is a file."""
    if glob.has_magic(pattern):
        return sorted(os.path.normpath(p) for p in glob.glob(pattern) if Path(p).is_file())
    return [pattern] if Path(pattern).is_file() else []


# --- classes -----------------------------------------------------------------------------


def class_names(config: dict) -> list[str]:
    return [c["name"] for c in config["data"]["classes"]]


def class_colors(config: dict) -> list[tuple[int, int, int]]:
    return [tuple(c["color"]) for c in config["data"]["classes"]]
