"""What a job spends before its real work: launch, imports, device, data, model."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("aerialseg")


class StartupClock:
    """Times what a job spends before its real work: from the process's start (Python, the
    Snakemake script wrapper) to the step function, then each phase marked in it."""

    def __init__(self):
        self.phases = [("launch", seconds_since_process_start())]
        self.last = time.perf_counter()

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases.append((phase, now - self.last))
        self.last = now

    def report(self, before: str) -> None:
        total = sum(seconds for _, seconds in self.phases)
        log.info("start-up: %.1f s before %s (%s)", total, before,
                 ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in self.phases))


def seconds_since_process_start() -> float:
    """How long this process has been running (NaN where the OS does not say)."""
    try:
        import psutil

        return time.time() - psutil.Process().create_time()
    except Exception:  # psutil missing or the OS unsupported: the figure is only informative
        return float("nan")
