"""Peak memory of loading and decoding a large image/label pair.

Writes a synthetic N x N RGB image and ISPRS colour label (TIFF by default), then loads and
decodes them in a fresh process, once with aerialseg (`io.labels.load_pair`) and once with a
straightforward baseline (Pillow/tifffile read, one full-size boolean mask per class, int64
ids), and reports each process's peak resident memory above its state after the imports, as
a multiple of the pair's own size in memory (image + label arrays, 6 bytes per pixel).

    python benchmarks/decode_memory.py --size 10000 [--format tif|png]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ISPRS = [(0, 0, 255), (0, 255, 0), (0, 255, 255), (255, 255, 0), (255, 255, 255)]
IGNORE = [(255, 0, 0)]

CHILD = r"""
import json, sys, time
import numpy as np
from aerialseg.io.labels import load_pair
from aerialseg.io.read import read_raster
from aerialseg.io.spec import DataSpec
mode, image_path, label_path = sys.argv[1:4]
colors = json.loads(sys.argv[4]); ignore = json.loads(sys.argv[5])
from _memory import peak_kib, rss_kib
start_kb = rss_kib()
t = time.perf_counter()
if mode == "aerialseg":
    spec = DataSpec(colors=tuple(map(tuple, colors)), ignore_colors=tuple(map(tuple, ignore)))
    image, ids = load_pair(image_path, label_path, spec)
else:  # baseline: read both whole, one boolean mask per colour, int64 ids
    image = read_raster(image_path)
    label = read_raster(label_path)
    ids = np.full(label.shape[:2], 255, dtype=np.int64)
    for i, c in enumerate(colors):
        ids[np.all(label == np.array(c, dtype=np.uint8), axis=-1)] = i
seconds = time.perf_counter() - t
peak_kb = peak_kib()
print(json.dumps({"start_kb": start_kb, "peak_kb": peak_kb, "seconds": seconds, "checksum": int(ids[::97, ::89].sum())}))
"""


def make_pair(folder: Path, size: int, fmt: str) -> tuple[Path, Path]:
    import numpy as np
    import tifffile
    from PIL import Image

    rng = np.random.default_rng(0)
    blocks = rng.integers(0, len(ISPRS) + len(IGNORE), (size // 50 + 1, size // 50 + 1), dtype=np.uint8)
    ids = np.repeat(np.repeat(blocks, 50, axis=0), 50, axis=1)[:size, :size]
    palette = np.array(ISPRS + IGNORE, dtype=np.uint8)
    label = palette[ids]
    image = (label // 2 + rng.integers(0, 100, (1, size, 1), dtype=np.uint8)).astype(np.uint8)
    paths = folder / f"image.{fmt}", folder / f"label.{fmt}"
    for path, array in zip(paths, (image, label)):
        if fmt == "tif":
            tifffile.imwrite(path, array, photometric="rgb")
        else:
            Image.fromarray(array).save(path, compress_level=1)
    return paths


def measure(mode: str, image: Path, label: Path) -> dict:
    command = [sys.executable, "-c", CHILD, mode, str(image), str(label), json.dumps(ISPRS), json.dumps(IGNORE)]
    child = subprocess.run(command, capture_output=True, text=True, cwd=ROOT / "benchmarks")  # where _memory is
    if child.returncode != 0:
        raise SystemExit(f"the {mode} decode failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--format", choices=["tif", "png"], default="tif")
    args = parser.parse_args()
    pair_mb = args.size * args.size * 6 / 2**20
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        image, label = make_pair(Path(tmp), args.size, args.format)
        print(f"wrote a {args.size} x {args.size} {args.format} pair in {time.perf_counter() - t:.0f} s; "
              f"in memory it is {pair_mb:.0f} MiB (image + label, uint8 RGB)")
        print("| loader | peak above imports (MiB) | x pair size | seconds |")
        print("|---|---:|---:|---:|")
        results = {mode: measure(mode, image, label) for mode in ("baseline", "aerialseg")}
        for mode, r in results.items():
            used = (r["peak_kb"] - r["start_kb"]) / 1024
            print(f"| {mode} | {used:.0f} | {used / pair_mb:.2f} | {r['seconds']:.1f} |")
        ratio = (results["aerialseg"]["peak_kb"] - results["aerialseg"]["start_kb"]) / (
            results["baseline"]["peak_kb"] - results["baseline"]["start_kb"])
        print(f"aerialseg / baseline peak: {ratio:.2f}")


if __name__ == "__main__":
    main()
