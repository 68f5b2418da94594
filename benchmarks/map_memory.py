"""Mapping rasters of any size: peak memory against image size, and windows in a no-data
collar costing nothing.

For each side (default 10000, 20000 and 40000 px) a synthetic 3-band GeoTIFF with a no-data
collar (``--collar`` of the side on every edge, nodata 0) is written band by band, then mapped
in a fresh process the way the workflow maps unlabelled imagery (`inference.map_image`: windowed
reading, the device mosaic block by block, the map written band by band and finished as a
Cloud-Optimised GeoTIFF, a preview), with a cheap stand-in model (a 1 x 1 convolution, 5
classes) so that it runs in minutes on a CPU; the mosaic's memory does not depend on the model
beyond one batch of activations. Printed per size: the peak resident memory of the mapping
process (and above what it holds once the libraries and the model are loaded), its seconds
and Mpx/s, the windows predicted against all windows (the collar's are
skipped) and the map's size on disk. Then the real model (DeepLabV3+ mobilenet_v2, untrained)
maps a ``--crop`` px image for its speed.

    python benchmarks/map_memory.py [--sizes 10000 20000 40000] [--collar 0.1] [--crop 4000] [--keep DIR]
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
import numpy as np, torch
from aerialseg import inference
from aerialseg.jobs import prediction
from aerialseg.inference import MosaicOptions
image_path, map_path, model_path, patch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.set_num_threads(2)
from aerialseg.config import sections, with_data_defaults
settings = sections(train={}, predict={"stride": None, "device": "cpu", "threads": 2, "backend": "torch"})
calls = [0]
if model_path == "standin":
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, 1)
    def predictor(batch):
        calls[0] += len(batch)
        return conv(batch.float() / 255)
    classes = [{"name": f"class {i}", "color": [40 * i, 0, 0]} for i in range(5)]
    checkpoint = {"data": with_data_defaults({"classes": classes, "image_bands": 3}), "patch_size": patch}
    model = inference.LoadedModel(checkpoint, MosaicOptions(patch, patch // 2, "mean", False, None), predictor, 5, torch.device("cpu"))
else:
    model = inference.load_model(inference.PredictOptions.from_settings(settings, 2), model_path, 1)
    real = model.predictor
    def counted(batch):
        calls[0] += len(batch)
        return real(batch)
    model.predictor = counted
def rss_mib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024
start_mib = rss_mib()  # after the imports and the model
start = time.perf_counter()
with torch.no_grad():
    inference.map_image(model, prediction.MapFiles(image_path, map_path, map_path.replace(".tif", "_preview.png"),
                                                   confidence=map_path.replace(".tif", "_confidence.tif")))
seconds = time.perf_counter() - start
with open("/proc/self/status") as status:  # VmHWM: this process's peak since its exec (ru_maxrss would count
    peak_mib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024  # the forking parent's)
print(json.dumps({"seconds": seconds, "peak_mib": peak_mib, "start_mib": start_mib, "windows": calls[0]}))
"""


def synthetic_geotiff(path: Path, side: int, collar: float, rows: int = 1024) -> None:
    """A smooth 3-band scene (it compresses), zero in a collar of ``collar`` x side on every edge."""
    import numpy as np
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    margin = int(side * collar)
    profile = dict(driver="GTiff", height=side, width=side, count=3, dtype="uint8", crs="EPSG:32640", nodata=0,
                   transform=Affine(0.5, 0, 305000, 0, -0.5, 2790000), tiled=True, blockxsize=512, blockysize=512,
                   compress="deflate")
    x = np.arange(side)
    with rasterio.open(path, "w", **profile) as dataset:
        for top in range(0, side, rows):
            y = np.arange(top, min(top + rows, side))[:, None]
            band = np.stack([(x[None] // 37 + y // 29) % 200 + 20, (x[None] // 53 * 3 + y // 41) % 200 + 20,
                             ((x[None] + y) // 61) % 200 + 20]).astype(np.uint8)
            inside = (y >= margin) & (y < side - margin) & (x[None] >= margin) & (x[None] < side - margin)
            dataset.write(np.where(inside[None], band, 0), window=Window(0, top, side, len(y)))


def windows(side: int, patch: int, stride: int) -> int:
    from aerialseg.patches import window_starts

    return len(window_starts(side, patch, stride)) ** 2


def map_in_child(image: Path, out: Path, model: str, patch: int) -> dict:
    child = subprocess.run([sys.executable, "-c", CHILD, str(image), str(out), model, str(patch)], capture_output=True,
                           text=True)
    if child.returncode:
        raise SystemExit(f"mapping {image} failed with exit status {child.returncode}:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 20000, 40000])
    parser.add_argument("--collar", type=float, default=0.1, help="no-data collar on every edge, as a share of the side")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--crop", type=int, default=4000, help="side of the image the real model maps (0: skip)")
    parser.add_argument("--keep", type=Path, default=None, help="a folder to keep the images and maps in")
    args = parser.parse_args()
    import torch

    folder = args.keep or Path(tempfile.mkdtemp(prefix="aerialseg-map-memory-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, 2 threads, CPU; {args.patch} px windows at stride {args.patch // 2}, batches of "
          f"a window row (at most 64), collar {args.collar:.0%} of the side on every edge (nodata 0)")
    print("| image (px) | image file (MiB) | model | seconds | Mpx/s | peak resident memory (MiB) "
          "| of which above the loaded libraries and model (MiB) | windows predicted / all | map file (MiB) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|", flush=True)
    rows = [(side, "standin") for side in args.sizes] + ([(args.crop, "real")] if args.crop else [])
    for side, model in rows:
        image = folder / f"image_{side}.tif"
        if not image.exists():
            synthetic_geotiff(image, side, args.collar)
        model_path = "standin"
        if model == "real":
            from aerialseg.model import ModelSpec, build, save_checkpoint

            spec = ModelSpec(5, "scratch")
            model_path = str(folder / "model.pt")
            classes = [{"name": f"class {i}", "color": [40 * i, 0, 0]} for i in range(5)]
            save_checkpoint(model_path, build(spec), spec, case=f"scratch_p{args.patch}", patch_size=args.patch,
                            data={"classes": classes, "bands": [0, 1, 2], "value_range": None, "nodata": None,
                                  "image_bands": 3})
        out = folder / f"map_{side}_{model}.tif"
        result = map_in_child(image, out, model_path, args.patch)
        total = windows(side, args.patch, args.patch // 2)
        name = "stand-in (1 x 1 conv)" if model == "standin" else "DeepLabV3+ mobilenet_v2"
        print(f"| {side} x {side} | {image.stat().st_size / 2**20:.0f} | {name} | {result['seconds']:.0f} | "
              f"{side * side / 1e6 / result['seconds']:.2f} | {result['peak_mib']:.0f} | "
              f"{result['peak_mib'] - result['start_mib']:.0f} | "
              f"{result['windows']} / {total} ({result['windows'] / total:.0%}) | {out.stat().st_size / 2**20:.1f} |",
              flush=True)
    print(f"files in {folder}")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"{time.perf_counter() - start:.0f} s in all")
