"""The README's commands that a user copies: the notebook snippet runs as printed."""

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from aerialseg import demo
from aerialseg.io.write import write_png

ROOT = Path(__file__).resolve().parents[1]


def test_the_notebook_snippet_runs_as_printed(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"so it can be used from a notebook too.*?```python\n(.*?)```", readme, re.S)[1]
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    paths = {}
    for seed, image in enumerate(("train", "test")):
        pixels, label = demo.render_scene(128, seed=seed)
        write_png(tmp_path / f"{image}.png", pixels)
        write_png(tmp_path / f"{image}_label.png", label)
        paths[image] = f"{{image: {image}.png, label: {image}_label.png}}"
    (tmp_path / "config/my_data.yaml").write_text(f"data:\n  train: {paths['train']}\n  test: {paths['test']}\n")
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "README.md", "exec"), {})
    table = pd.read_csv(tmp_path / "stats.csv")
    assert table.groupby("image").share.sum().to_dict() == pytest.approx({"train": 100.0, "test": 100.0})
