"""Executing one job: its log file, and its errors as one line (a known problem) or with
their traceback (anything else)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from ..errors import ConfigError, DivergenceError, InputError, WeightsError, WriteError, first_line

log = logging.getLogger("aerialseg")


def setup_logging(path: str | Path | None) -> None:
    """Log to ``path`` (the rule's log file) and to stderr."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    logging.basicConfig(
        level=logging.INFO, handlers=handlers, force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.captureWarnings(True)


FAILED = 1
"""The exit status of a job stopped by a problem it foresaw (`execute`)."""


def execute(step, log_path, *args, **kwargs) -> int:
    """Execute one job with logging. Returns 0 when it is done, `FAILED` when it stopped on a
    problem it foresaw (an input, a setting, the weights, a divergence, a full disk), logged as
    one line without traceback; anything else is logged with its traceback and re-raised. The
    log file is closed when the job ends (a process may run several: tests, notebooks).
    Scripts exit with the status: ``sys.exit(runner.execute(...))``."""
    setup_logging(log_path)
    try:
        step(*args, **kwargs)
    except (InputError, ConfigError, WeightsError, DivergenceError, WriteError) as error:
        log.error("%s", error)
        return FAILED
    except Exception as error:  # unforeseen (CUDA out of memory, say): its type and message first, then the traceback
        log.exception("%s failed: %s: %s", step.__name__, type(error).__name__, first_line(error))
        raise
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            root.removeHandler(handler)
            handler.close()
    return 0
