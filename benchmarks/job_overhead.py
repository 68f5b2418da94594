"""What each training and prediction job spends besides its real work, from a finished run.

For every job of the rules train and predict, the job's wall time (Snakemake's benchmark
file, ``results/benchmarks/{rule}/...tsv``) minus its work: the epochs for train (the
``seconds`` column of ``history.csv``), the mosaics for predict (the "predicted ... in N s"
lines of its log). What is left is start-up (Python, the Snakemake script wrapper, imports,
the device, reading the inputs, building the model) and wrap-up (writing the outputs). Where
the logs have them, the start-up phases that the jobs measured themselves are shown too.

    python benchmarks/job_overhead.py RESULTS [RESULTS ...]     # e.g. results/ before and after

Each RESULTS is a ``results/`` folder of a finished run; give two to compare them.
"""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path

import pandas as pd

STARTUP = re.compile(r"start-up: [\d.]+ s before [^(]*\((.*)\)")
MOSAIC = re.compile(r"predicted with .* in ([\d.]+) s")


def job_wall_seconds(tsv: Path) -> float:
    return float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1])


def jobs(results: Path, rule: str):
    """(job name, wall seconds, work seconds, start-up phases) of each job of ``rule``."""
    for tsv in sorted((results / "benchmarks" / rule).glob("*.tsv")):
        log = (results / "logs" / rule / f"{tsv.stem}.log").read_text()
        if rule == "train":
            work = float(pd.read_csv(results / "cases" / tsv.stem / "history.csv").seconds.sum())
        else:
            work = sum(float(s) for s in MOSAIC.findall(log))
        phases = {}
        if match := STARTUP.search(log):
            phases = {k: float(v) for k, v in re.findall(r"(\w[\w ]*?) ([\d.]+) s", match.group(1))}
        yield tsv.stem, job_wall_seconds(tsv), work, phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, nargs="+")
    args = parser.parse_args()
    print("| run | rule | jobs | job wall, median (s) | work, median (s) | rest per job, median (s) | rest, all jobs (s) | start-up phases, median (s) |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for results in args.results:
        for rule in ("train", "predict"):
            rows = list(jobs(results, rule))
            if not rows:
                continue
            walls, works = [r[1] for r in rows], [r[2] for r in rows]
            rest = [w - k for w, k in zip(walls, works)]
            phase_names = list(rows[0][3])
            phases = ", ".join(f"{name} {statistics.median(r[3].get(name, 0.0) for r in rows):.1f}" for name in phase_names)
            print(f"| {results} | {rule} | {len(rows)} | {statistics.median(walls):.1f} | {statistics.median(works):.1f} | "
                  f"{statistics.median(rest):.1f} | {sum(rest):.1f} | {phases or '(not logged)'} |")


if __name__ == "__main__":
    main()
