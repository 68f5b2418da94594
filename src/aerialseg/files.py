"""Writing outputs atomically: a reader (or Snakemake) never sees a half-written file, and a
full disk is reported as such, naming the file."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd

from .errors import WriteError

LOW_SPACE = 64 << 20
"""Free bytes below which a failed write is put down to a full disk (libraries that write
through C++ streams, torch.save among them, report it only as an iostream error)."""


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise _write_error(path, error) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are ordinary readable files
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:
        full = _disk_full(path, error)  # before the partial file is removed and its space freed
        Path(tmp).unlink(missing_ok=True)
        if full:
            raise _disk_full_error(path) from None
        raise
    finally:
        Path(tmp).unlink(missing_ok=True)


def _disk_full(path: Path, error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return shutil.disk_usage(path.parent).free < LOW_SPACE
    except OSError:
        return False


def _write_error(path: Path, error: BaseException) -> WriteError:
    if _disk_full(path, error):
        return _disk_full_error(path)
    return WriteError(f"{path}: cannot write it ({error.strerror or error})")


def _disk_full_error(path: Path) -> WriteError:
    try:
        free = f" ({shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free there)"
    except OSError:
        free = ""
    return WriteError(f"{path}: cannot write it: no space left on the disk{free}. Free some space (see "
                      "\"When something goes wrong\" in the README for what a run needs) and run again; "
                      "nothing half-written was left")


def write_csv(frame: pd.DataFrame, path: str | Path, **kwargs) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, **kwargs)


def write_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_markdown(frame: pd.DataFrame, path: str | Path, floatfmt: str = ".4f", footer: str = "") -> None:
    write_text(frame.to_markdown(index=False, floatfmt=floatfmt) + "\n" + footer, path)


def write_yaml(data, path: str | Path, comment: str = "") -> None:
    """YAML for people: keys in their order, short lists on one line, a comment line first."""
    import yaml

    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)
    write_text((f"# {comment}\n" if comment else "") + text, path)


def write_json(data, path: str | Path) -> None:
    write_text(json.dumps(data, indent=2) + "\n", path)


def sha256(path: str | Path) -> str:
    """The sha256 of a file's content, read in blocks of 1 MiB."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
