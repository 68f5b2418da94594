"""Shared fixtures: the default config and paths of the repository and the shared real data."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def default_config() -> dict:
    """config.yaml as written (not yet validated)."""
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.fixture
def isprs_colors(default_config) -> list[tuple[int, int, int]]:
    return [tuple(c["color"]) for c in default_config["data"]["classes"]]


@pytest.fixture(autouse=True, scope="session")
def _onnx_cache(tmp_path_factory):
    """The console command keeps exported ONNX graphs in a cache folder: in the tests, one of
    their own, never the user's ~/.cache/aerialseg."""
    import os

    os.environ["AERIALSEG_CACHE"] = str(tmp_path_factory.mktemp("onnx-cache"))
    yield


def pytest_collection_modifyitems(config, items):
    """With several test processes (make test: pytest -n 2 --dist loadfile), the longest files
    first: the Slurm test, which mostly waits on the cluster, starts at once beside the other
    workflow tests instead of last; alone, the order stays that of the files."""
    if getattr(config.option, "numprocesses", None) or hasattr(config, "workerinput"):
        items.sort(key=lambda item: (not item.nodeid.startswith("tests/workflow/test_slurm"),
                                     not item.nodeid.startswith("tests/workflow/")))
