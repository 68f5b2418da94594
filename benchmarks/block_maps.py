"""A map as one job against the same map as block jobs (``predict.block_size``): wall time, the
overhead of the halo and of the gather, and the peak memory of each block job.

A synthetic 3-band GeoTIFF of ``--size`` px a side with a no-data collar (``--collar`` of the
side on every edge, nodata 0) is mapped by an untrained DeepLabV3+ (mobilenet_v2, the study's
network with a 32-channel decoder; its speed is the trained one's) on ONNX Runtime, the CPU's
default, with windows of ``--patch`` px every half patch:

1. as one job (`prediction.map_images`, one process, ``--threads`` threads);
2. as the workflow's block jobs, each a process of its own as Snakemake runs them: the grid
   job (`jobs.blocks.block_grid`), the block jobs (`jobs.blocks.map_block`, one thread each)
   run one at a time (1 core busy) and then two at a time (2 cores busy), and the gather
   (`jobs.blocks.gather_blocks`).

Printed: each run's wall time; the halo's overhead (windows predicted by the block jobs
against the one job's, from the grid's geometry, and the block jobs' summed time against one
job's on one thread); the grid's and the gather's seconds; each block job's seconds and peak
resident memory (VmHWM); and whether the gathered map equals the one job's, pixel for pixel.

    python benchmarks/block_maps.py [--size 20000] [--block 2048] [--patch 64] [--collar 0.05] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
args = json.loads(sys.argv[1])
start = time.perf_counter()
from aerialseg.jobs import blocks, prediction, runner
from aerialseg.config import sections
settings = sections(predict={"stride": None, "device": "cpu", "threads": args["threads"], "backend": "onnxruntime"},
                    train={"device": "cpu"})
job = args["job"]
if job == "one":
    step, rest = prediction.map_images, (settings, args["model"], [prediction.MapFiles(args["image"], args["map"], args["preview"])])
elif job == "grid":
    step, rest = blocks.block_grid, (args["block_size"], args["model"], args["image"], args["grid"])
elif job == "block":
    files = blocks.BlockFiles(args["image"], args["grid"], tuple(args["index"]), args["block"])
    step, rest = blocks.map_block, (settings, args["model"], files)
else:
    step, rest = blocks.gather_blocks, (args["grid"], args["blocks"], prediction.MapFiles(args["image"], args["map"], args["preview"]))
status = runner.execute(step, args["log"], *rest)
with open("/proc/self/status") as found:
    peak = next(int(line.split()[1]) for line in found if line.startswith("VmHWM:")) / 1024
print(json.dumps({"status": status, "seconds": time.perf_counter() - start, "peak_mib": peak}))
"""


def write_image(path: Path, size: int, collar: float) -> None:
    """A 3-band GeoTIFF of noise-textured stripes with a no-data collar, written in strips."""
    import numpy as np
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    rng = np.random.default_rng(0)
    edge = int(size * collar)
    with rasterio.open(path, "w", driver="GTiff", height=size, width=size, count=3, dtype="uint8", tiled=True,
                       compress="deflate", crs="EPSG:32640", transform=Affine(0.3, 0, 305000, 0, -0.3, 2790000),
                       nodata=0) as dataset:
        for top in range(0, size, 512):
            rows = min(512, size - top)
            y = np.arange(top, top + rows)[:, None]
            x = np.arange(size)[None, :]
            base = ((x // 97 + y // 61) % 5 * 40 + 30).astype(np.int16)
            strip = np.stack([base + rng.integers(-20, 20, (rows, size)) for _ in range(3)]).clip(1, 255).astype("uint8")
            strip[:, :, :edge] = 0
            strip[:, :, size - edge:] = 0
            strip[:, (y[:, 0] < edge) | (y[:, 0] >= size - edge)] = 0
            dataset.write(strip, window=Window(0, top, size, rows))


def write_model(folder: Path, patch: int) -> Path:
    """An untrained model.pt, and its model.onnx beside it (as rule export_onnx writes it)."""
    from aerialseg import export
    from aerialseg.model import ModelSpec, build, save_checkpoint

    spec = ModelSpec(5, "scratch", decoder_channels=32)
    classes = [{"name": f"class {i}", "color": [40 * i, 200 - 30 * i, 90]} for i in range(5)]
    save_checkpoint(folder / "model.pt", build(spec), spec, case=f"scratch_p{patch}", patch_size=patch, data={
        "classes": classes, "label_format": "color", "ignore_colors": [], "ignore_values": [], "bands": [0, 1, 2],
        "value_range": None, "image_bands": 3})
    (folder / "model.onnx").write_bytes(export.to_bytes(folder / "model.pt", {"stride": None, "blend": "mean"}))
    return folder / "model.pt"


def run_jobs(jobs: list[dict], at_once: int) -> tuple[float, list[dict]]:
    """Run job processes, ``at_once`` at a time: (wall seconds, each one's report)."""
    start, waiting, running, reports = time.perf_counter(), list(jobs), [], []
    while waiting or running:
        while waiting and len(running) < at_once:
            job = waiting.pop(0)
            running.append(subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(job)], stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL, text=True))
        done = running.pop(0)
        out = done.communicate()[0]
        report = json.loads(out.strip().splitlines()[-1])
        if report["status"] != 0:
            raise SystemExit(f"a {jobs[0]['job']} job failed: see {jobs[0]['log']}")
        reports.append(report)
    return time.perf_counter() - start, reports


def halo_windows(size: int, block: int, patch: int, blocks_with_data) -> tuple[int, int]:
    """(windows the block jobs predict, windows of the one job): from the grid's geometry, before
    windows wholly in no-data are skipped (alike in both)."""
    from aerialseg import blocks
    from aerialseg.patches import window_starts

    stride = patch // 2
    grid = blocks.BlockGrid(size, size, block)
    total = 0
    for index in blocks_with_data:
        area = blocks.region(grid.block(*index), (size, size), patch, stride)
        total += len(window_starts(area.height, patch, stride)) * len(window_starts(area.width, patch, stride))
    return total, len(window_starts(size, patch, stride)) ** 2


def same_map(first: Path, second: Path) -> bool:
    import numpy as np
    import rasterio

    with rasterio.open(first) as a, rasterio.open(second) as b:
        return all(np.array_equal(a.read(1, window=w), b.read(1, window=w)) for _, w in a.block_windows(1))


def one_job(folder: Path, common: dict, threads: int) -> None:
    """The map as one job of ``threads`` threads."""
    seconds, (one,) = run_jobs([{**common, "job": "one", "threads": threads, "map": str(folder / f"one_{threads}.tif"),
                                 "preview": str(folder / "one_preview.png"), "log": str(folder / "one.log")}], 1)
    print(f"one job, {threads} thread(s): {seconds:.1f} s wall, peak {one['peak_mib']:.0f} MiB")


def block_jobs(folder: Path, common: dict, args) -> list[dict]:
    """The grid job, the halo's windows, then the block jobs one and two at a time; returns the
    block jobs."""
    grid_path = folder / "blocks/grid.json"
    onnx = {**common, "model": str(Path(common["model"]).with_suffix(".onnx"))}  # as the workflow's grid job reads it on the CPU
    seconds, _ = run_jobs([{**onnx, "job": "grid", "block_size": args.block, "grid": str(grid_path),
                            "threads": 1, "log": str(folder / "grid.log")}], 1)
    kept = json.loads(grid_path.read_text())["blocks"]
    print(f"grid job: {seconds:.1f} s; {len(kept)} blocks hold data")
    predicted, whole = halo_windows(args.size, args.block, args.patch, kept)
    print(f"halo: the block jobs predict {predicted} windows, the one job {whole} ({predicted / whole - 1:+.1%})")
    jobs = [{**common, "job": "block", "threads": 1, "grid": str(grid_path), "index": index,
             "block": str(folder / f"blocks/{index[0]}_{index[1]}.npz"),
             "log": str(folder / f"blocks/{index[0]}_{index[1]}.log")} for index in kept]
    for busy in (1, 2):
        seconds, reports = run_jobs(jobs, busy)
        times = sorted(r["seconds"] for r in reports)
        peaks = sorted(r["peak_mib"] for r in reports)
        print(f"block jobs, {busy} at a time of 1 thread ({busy} core(s) busy): {seconds:.1f} s wall; per job "
              f"{times[0]:.1f}-{times[-1]:.1f} s (sum {sum(times):.1f} s), peak memory {peaks[0]:.0f}-{peaks[-1]:.0f} MiB")
    return jobs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--collar", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=2, help="threads of the one job")
    parser.add_argument("--keep", type=Path, help="a folder to keep the image, the maps and the logs in")
    args = parser.parse_args(argv)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="block-maps-"))
    folder.mkdir(parents=True, exist_ok=True)
    write_image(folder / "image.tif", args.size, args.collar)
    common = {"model": str(write_model(folder, args.patch)), "image": str(folder / "image.tif")}
    print(f"{args.size} x {args.size} px, {args.collar:.0%} no-data collar, {args.patch} px windows every "
          f"{args.patch // 2} px, blocks of {args.block} px; ONNX Runtime on the CPU")
    for threads in sorted({1, args.threads}):
        one_job(folder, common, threads)
    jobs = block_jobs(folder, common, args)
    seconds, _ = run_jobs([{**common, "job": "gather", "grid": str(folder / "blocks/grid.json"),
                            "blocks": [j["block"] for j in jobs], "map": str(folder / "gathered.tif"),
                            "preview": str(folder / "gathered_preview.png"), "threads": 1,
                            "log": str(folder / "gather.log")}], 1)
    print(f"gather job: {seconds:.1f} s")
    print(f"gathered map equals the one job's, pixel for pixel: {same_map(folder / 'one_1.tif', folder / 'gathered.tif')}")


if __name__ == "__main__":
    main()
