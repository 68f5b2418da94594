"""Mosaic prediction: throughput and peak memory against the study's patch-by-patch loop.

Two predictions of the same image with the same model and stride, each in a fresh process:

* aerialseg: `aerialseg.mosaic.predict_ids` (batched windows, logits accumulated strip by
  strip, ids written as finished);
* baseline (the study's approach): one window at a time (batch of one), logits summed into a
  full-size (classes, H, W) array and divided by a full-size count, then argmax.

Reported: megapixels of image per second, the peak resident memory of the process above its
state after the imports and the image, and the ratios. A second part predicts a 20000 x 20000
image with aerialseg alone to show that memory stays bounded; there the model is a stand-in
(a 1 x 1 convolution) because the real model would take hours on a CPU, and the memory of the
mosaic does not depend on the model beyond one batch of activations.

    python benchmarks/mosaic_throughput.py [--size 1024] [--patch 64] [--huge 20000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/../benchmarks"]
import numpy as np, torch
from aerialseg import mosaic
from aerialseg.model import ModelSpec, build, normalize
from aerialseg.patches import grid
mode, model_kind, size, patch, stride, batch, device = sys.argv[2], sys.argv[3], *map(int, sys.argv[4:8]), sys.argv[8]
torch.manual_seed(0)
if model_kind == "real":
    spec = ModelSpec(5, "scratch")
    net = build(spec).to(device).eval()
    predictor = lambda x: net(normalize(x, spec))
else:
    conv = torch.nn.Conv2d(3, 5, 1).to(device)
    predictor = lambda x: conv(x.float() / 255)
image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
from _memory import peak_kib, rss_kib
start_kb = rss_kib()
t = time.perf_counter()
with torch.no_grad():
    if mode == "aerialseg":
        ids = mosaic.predict_ids(predictor, image, 5, patch, stride, batch_size=batch, device=device)
    else:
        total = torch.zeros((5, size, size)); count = torch.zeros((size, size))
        for r, c in grid(size, size, patch, stride)[["row", "col"]].to_numpy():
            window = torch.from_numpy(image[r:r + patch, c:c + patch]).permute(2, 0, 1)[None].to(device)
            total[:, r:r + patch, c:c + patch] += predictor(window)[0].float().cpu()
            count[r:r + patch, c:c + patch] += 1
        ids = (total / count).argmax(0).to(torch.uint8).numpy()
seconds = time.perf_counter() - t
peak_kb = peak_kib()
print(json.dumps({"seconds": seconds, "start_kb": start_kb, "peak_kb": peak_kb, "checksum": int(ids[::101, ::103].sum())}))
"""


def measure(mode, model, size, patch, stride, batch, device) -> dict:
    command = [sys.executable, "-c", CHILD, str(ROOT / "src"), mode, model, str(size), str(patch), str(stride), str(batch), device]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024, help="side of the image of the comparison")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--stride", type=int, default=None, help="default: half the patch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--huge", type=int, default=20000, help="side of the bounded-memory run (0: skip)")
    parser.add_argument("--device", default="cuda" if __import__("torch").cuda.is_available() else "cpu")
    args = parser.parse_args()
    stride = args.stride or args.patch // 2
    print(f"device {args.device}; {args.size} x {args.size} px, DeepLabV3+ mobilenet_v2, patch {args.patch}, "
          f"stride {stride}, batch {args.batch_size} (baseline: 1)")
    print("| prediction | Mpx/s | peak above image (MiB) | seconds |")
    print("|---|---:|---:|---:|")
    runs = {mode: measure(mode, "real", args.size, args.patch, stride, args.batch_size, args.device)
            for mode in ("baseline", "aerialseg")}
    assert runs["baseline"]["checksum"] == runs["aerialseg"]["checksum"], "the two mosaics differ"
    for mode, r in runs.items():
        print(f"| {mode} | {args.size ** 2 / 1e6 / r['seconds']:.2f} | {(r['peak_kb'] - r['start_kb']) / 1024:.0f} | {r['seconds']:.1f} |")
    speed = runs["baseline"]["seconds"] / runs["aerialseg"]["seconds"]
    memory = (runs["aerialseg"]["peak_kb"] - runs["aerialseg"]["start_kb"]) / (runs["baseline"]["peak_kb"] - runs["baseline"]["start_kb"])
    print(f"aerialseg vs baseline: {speed:.2f}x the throughput, {memory:.2f}x the peak memory; identical class ids")
    if args.huge:
        r = measure("aerialseg", "standin", args.huge, args.patch, stride, 256, args.device)
        image_mib = args.huge ** 2 * 3 / 2**20
        print(f"{args.huge} x {args.huge} px (image {image_mib:.0f} MiB, stand-in model): peak resident memory "
              f"{r['peak_kb'] / 1024:.0f} MiB in all, {(r['peak_kb'] - r['start_kb']) / 1024:.0f} MiB above the image; "
              f"{r['seconds']:.0f} s")


if __name__ == "__main__":
    main()
