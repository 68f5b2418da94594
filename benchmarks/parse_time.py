"""What starting the workflow costs with many input tiles: a dry run of a synthetic study of N
georeferenced tiles (GeoTIFF images, PNG labels), with this checkout and another one (its
root: ``Snakefile``, ``rules/``, ``src/``) in the same run, and how many times the input files
are opened while Snakemake parses the workflow and builds its jobs (with ``strace`` where it
is installed).

Each code is timed on a fresh folder ("first": nothing recorded yet) and again on the same
folder ("again"); where it has the pre-flight job, that job is run (its seconds: Snakemake
included) and the dry run timed once more (its record known: the jobs of the georeferenced
tiles' GeoTIFFs listed too); ``--repeats`` times each in turn; the table gives medians.

    python benchmarks/parse_time.py --tiles 400 --baseline ../release [--repeats 3]

Where Slurm's client tools are installed but no controller runs, the Slurm executor plugin
that Snakemake imports at every start waits 9 s for ``scontrol``; the runs here get an
``scontrol`` that fails at once (as the workflow tests do), so the figures are the workflow's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_study(folder: Path, tiles: int) -> Path:
    """``tiles`` 256 px GeoTIFF tiles with PNG labels, split 3:1 into training and test tiles."""
    import rasterio
    from rasterio.transform import Affine

    from aerialseg.io.write import write_png

    rng = np.random.default_rng(0)
    colors = np.array([[0, 0, 255], [0, 255, 0], [0, 255, 255], [255, 255, 0], [255, 255, 255]], np.uint8)
    for i in range(tiles):
        with rasterio.open(folder / f"t{i:04d}.tif", "w", driver="GTiff", width=256, height=256, count=3,
                           dtype="uint8", crs="EPSG:32632", transform=Affine(0.1, 0, 500000 + 30 * i, 0, -0.1, 5e6)) as out:
            out.write(rng.integers(0, 255, (3, 256, 256), dtype=np.uint8))
        write_png(folder / f"t{i:04d}_label.png", colors[rng.integers(0, 5, (256, 256))])
    test = max(tiles // 4, 1)
    config = folder / "study.yaml"
    config.write_text(yaml.safe_dump({"data": {
        "train": [{"image": f"{folder}/t{i:04d}.tif", "label": f"{folder}/t{i:04d}_label.png"} for i in range(test, tiles)],
        "test": [{"image": f"{folder}/t{i:04d}.tif", "label": f"{folder}/t{i:04d}_label.png"} for i in range(test)]}}))
    return config


def environment(shims: Path, code: Path) -> dict:
    scontrol = shims / "scontrol"
    scontrol.write_text("#!/bin/sh\nexit 1\n")
    scontrol.chmod(0o755)
    path = f"{shims}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "PYTHONPATH": str(code / "src")}


def dry_run(code: Path, folder: Path, config: Path, env: dict, trace: Path | None = None,
            target: str | None = None) -> float:
    """The seconds of a dry run (or, with ``target``, of making that file)."""
    command = [sys.executable, "-m", "snakemake", "-s", str(code / "Snakefile"), "-d", str(folder),
               *([target] if target else ["-n"]), "--quiet", "--cores", "2", "--configfile", str(config)]
    if trace is not None:
        command = ["strace", "-f", "-e", "trace=openat", "-o", str(trace), *command]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{code}: the dry run failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def opened(trace: Path, data: Path) -> int:
    """How many times an image or label of the study was opened (files not found aside)."""
    return sum(1 for line in trace.read_text().splitlines()
               if str(data) in line and ('.tif"' in line or '.png"' in line) and "ENOENT" not in line)


def has_preflight(code: Path) -> bool:
    return "checkpoint preflight:" in (code / "rules" / "data.smk").read_text()


def measure(codes: dict[str, Path], data: Path, config: Path, repeats: int, shims: Path) -> dict:
    seconds = {(name, when): [] for name in codes for when in ("first", "again", "record")}
    for _ in range(repeats):
        for name, code in codes.items():
            folder, env = Path(tempfile.mkdtemp(dir=data.parent)), environment(shims, code)
            seconds[name, "first"].append(dry_run(code, folder, config, env))
            seconds[name, "again"].append(dry_run(code, folder, config, env))
            if has_preflight(code):  # the jobs that wait for its record (the tiles' GeoTIFFs) are listed then
                seconds[name, "preflight"] = [*seconds.get((name, "preflight"), []),
                                              dry_run(code, folder, config, env, target="results/data/preflight.json")]
                seconds[name, "record"].append(dry_run(code, folder, config, env))
            shutil.rmtree(folder)
    return {key: statistics.median(values) if values else None for key, values in seconds.items()}


def count_opens(codes: dict[str, Path], data: Path, config: Path, shims: Path) -> dict[str, str]:
    if shutil.which("strace") is None:
        return {name: "(no strace)" for name in codes}
    counts = {}
    for name, code in codes.items():
        folder = Path(tempfile.mkdtemp(dir=data.parent))
        dry_run(code, folder, config, environment(shims, code), folder / "first.trace")
        dry_run(code, folder, config, environment(shims, code), folder / "again.trace")
        counts[name] = f"{opened(folder / 'first.trace', data)} / {opened(folder / 'again.trace', data)}"
        shutil.rmtree(folder)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiles", type=int, default=400)
    parser.add_argument("--baseline", type=Path, help="the root of the checkout to compare with")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    codes = {"this": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        shims = Path(tmp) / "shims"
        shims.mkdir()
        config = make_study(data, args.tiles)
        times = measure(codes, data, config, args.repeats, shims)
        opens = count_opens(codes, data, config, shims)
    print(f"{args.tiles} georeferenced tiles ({2 * args.tiles} input files), dry run with --cores 2; "
          f"median of {args.repeats}; {describe()}\n")
    print("| code | first dry run, s | again, s | after the pre-flight job, s | the pre-flight job, s "
          "| input files opened (first / again) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in codes:
        record, job = times[name, "record"], times.get((name, "preflight"))
        print(f"| {name} | {times[name, 'first']:.2f} | {times[name, 'again']:.2f} | "
              f"{'-' if record is None else f'{record:.2f}'} | {'-' if job is None else f'{job:.2f}'} | {opens[name]} |")
    if "baseline" in codes:
        print(f"\nthis / baseline, first dry run: {times['this', 'first'] / times['baseline', 'first']:.2f}")


if __name__ == "__main__":
    main()
