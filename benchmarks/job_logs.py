"""What every training and prediction job of a run said about itself, read from its log: also
for a run that was cut short, whose jobs may have stopped anywhere.

For each job of the rules train and predict (``results/logs/{train,predict}/*.log``): its GPU
slot (or the CPU), its start-up seconds, the epochs it finished and their median seconds, how
its steps ran ("captured, N replays" or "eager, because ..."), and how it ended (done, failed
with the error's first line, or cut short: still running when the log stops).

    python benchmarks/job_logs.py RESULTS        # a results/ folder, finished or not
"""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path

GPU = re.compile(r"GPU (\d+) of (\d+) visible \(([^)]*)\)")
SLOT = re.compile(r"took GPU slot (\d+) of GPU (\d+)")
SHARING = re.compile(r"sharing GPU (\d+)")
STARTUP = re.compile(r"start-up: ([\d.]+) s before")
EPOCH = re.compile(r"epoch (\d+)/(\d+)(?: \(partial[^)]*\))?: .* \| ([\d.]+) s \(")
STEPS = re.compile(r"(training|validation) step: (.*)$", re.M)
FAILED_CAPTURE = re.compile(r"capturing a CUDA graph failed \((.*)\)")
MOSAIC = re.compile(r": predicted(?: with flip TTA)? in ([\d.]+) s")
PREDICTED = re.compile(r"predicted (\d+) image\(s\) in all")
ERROR = re.compile(r" (?:ERROR|CRITICAL) [\w.]+: (.*)")


def describe(rule: str, text: str) -> dict:
    """The facts one job's log gives."""
    if match := GPU.search(text):
        slot = f", slot {m[1]}" if (m := SLOT.search(text)) else ""
        where = f"GPU {match[1]} of {match[2]} ({match[3]}{slot})" + (" shared" if SHARING.search(text) else "")
    else:
        where = "CPU" if " on cpu " in text else "?"
    epochs = [(int(m[1]), int(m[2]), float(m[3])) for m in EPOCH.finditer(text)]
    steps = {kind: how for kind, how in STEPS.findall(text)}
    failures = FAILED_CAPTURE.findall(text)
    if error := ERROR.search(text):
        end = "FAILED: " + error[1][:160]
    elif rule == "train":
        end = "done" if "kept epoch" in text else "cut short"
    else:
        end = f"done, {m[1]} image(s)" if (m := PREDICTED.search(text)) else "cut short"
    return {
        "where": where,
        "startup": float(m[1]) if (m := STARTUP.search(text)) else None,
        "epochs": f"{epochs[-1][0]}/{epochs[-1][1]}" if epochs else "-",
        "epoch_s": statistics.median(e[2] for e in epochs) if epochs else None,
        "mosaic_s": sum(float(s) for s in MOSAIC.findall(text)) or None,
        "steps": steps, "failures": failures, "end": end,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    print("| job | device | start-up (s) | epochs | s/epoch (median) | mosaics (s) | training steps | validation steps | end |")
    print("|---|---|---:|---:|---:|---:|---|---|---|")
    for rule in ("train", "predict"):
        for log in sorted((args.results / "logs" / rule).glob("*.log")):
            job = describe(rule, log.read_text(errors="replace"))
            cells = [f"{rule} {log.stem}", job["where"],
                     f"{job['startup']:.1f}" if job["startup"] is not None else "-", job["epochs"],
                     f"{job['epoch_s']:.2f}" if job["epoch_s"] is not None else "-",
                     f"{job['mosaic_s']:.2f}" if job["mosaic_s"] else "-",
                     job["steps"].get("training", "-"), job["steps"].get("validation", "-"), job["end"]]
            print("| " + " | ".join(cells) + " |")
            for failure in job["failures"]:
                print(f"|   ^ capture failed: {failure} |")


if __name__ == "__main__":
    main()
