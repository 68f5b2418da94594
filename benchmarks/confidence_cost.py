"""What a map's confidence costs: the same map written end to end (read band by band, mosaic,
COG map, preview) without confidence (the ids-only mosaic, as maps were written before issue
29), with its confidence raster (the default), and with confidence and per-class
probabilities; on each back-end, in the same process, the rounds interleaved, the median of
``--rounds`` runs each. Prints a Markdown table: seconds, Mpx/s and the ratio to the map
without confidence. The model is untrained (the speed of a model does not depend on its
weights) unless a model.pt is given.

    python benchmarks/confidence_cost.py [--model results/cases/imagenet_p64/model.pt] \
        [--side 2048] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def synthetic_geotiff(path: Path, side: int) -> None:
    """A georeferenced 3-band image of blocky texture (a model sees edges), written by rows."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    rng = np.random.default_rng(0)
    tile = np.kron(rng.integers(0, 256, (3, 64, 64), dtype=np.uint8), np.ones((1, 8, 8), np.uint8))
    with rasterio.open(path, "w", driver="GTiff", width=side, height=side, count=3, dtype="uint8", tiled=True,
                       crs="EPSG:32640", transform=from_origin(300000, 2800000, 0.3, 0.3)) as dataset:
        for top in range(0, side, 512):
            rows = min(512, side - top)
            block = np.tile(tile, (1, -(-rows // 512), -(-side // 512)))[:, :rows, :side]
            dataset.write(block, window=Window(0, top, side, rows))


def untrained_model(path: Path) -> None:
    import torch

    from aerialseg.model import ModelSpec, build, save_checkpoint

    torch.manual_seed(0)
    spec = ModelSpec(6, "scratch")
    classes = [{"name": f"class {i}", "color": [40 * i, 255 - 40 * i, 100]} for i in range(6)]
    save_checkpoint(path, build(spec), spec, case="scratch_p64", patch_size=64, data={
        "classes": classes, "label_format": "color", "ignore_colors": [], "ignore_values": [], "bands": [0, 1, 2],
        "value_range": None, "nodata": None, "image_bands": 3})


def map_without_confidence(model, files) -> None:
    """How a map was written before confidence: the ids-only mosaic, the COG map, the preview."""
    from aerialseg.inference import classes
    from aerialseg.io.read import georeference
    from aerialseg.io.write import Preview

    where = georeference(files.image)
    with model.open(files.image) as image:
        preview = Preview(image.height, image.width, classes(model.checkpoint)[0])
        writer = model.map_writer(files.map, image, where)
        for top, ids in model.iter_ids(image):
            preview.write(top, ids)
            writer.write(top, ids)
    writer.close()
    preview.save(files.preview)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=["onnxruntime", "torch"])
    args = parser.parse_args()

    import logging

    logging.disable(logging.INFO)
    from aerialseg.config import sections
    from aerialseg.inference import PredictOptions, load_model, map_image
    from aerialseg.jobs import prediction

    work = Path(tempfile.mkdtemp(prefix="confidence_cost_"))
    image = work / "area.tif"
    synthetic_geotiff(image, args.side)
    model_path = args.model or work / "model.pt"
    if args.model is None:
        untrained_model(model_path)
    out = work / "out"
    variants = {
        "map only (before)": lambda m: map_without_confidence(m, prediction.MapFiles(image, out / "a.tif", out / "a_p.png")),
        "map + confidence (default)": lambda m: map_image(m, prediction.MapFiles(
            image, out / "b.tif", out / "b_p.png", confidence=out / "b_confidence.tif")),
        "map + confidence + probabilities": lambda m: map_image(m, prediction.MapFiles(
            image, out / "c.tif", out / "c_p.png", confidence=out / "c_confidence.tif",
            probabilities=out / "c_probabilities.tif")),
    }
    print(f"Machine: {cpu_name()}, {args.threads} threads; a {args.side} x {args.side} px georeferenced image, "
          f"{'model ' + str(args.model) if args.model else 'an untrained 6-class model, 64 px windows'}, stride "
          f"half the window, median of {args.rounds} rounds\n")
    print("| back-end | output | seconds | Mpx/s | ratio to map only |")
    print("|---|---|---|---|---|")
    for backend in args.backends:
        settings = sections(predict={"stride": None, "backend": backend, "device": "cpu", "threads": args.threads},
                            train={"device": "cpu", "threads": args.threads})
        model = load_model(PredictOptions.from_settings(settings, args.threads), model_path, 1, onnx_cache=work / "onnx")
        variants["map only (before)"](model)  # warm-up: first calls, caches
        seconds = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, run in variants.items():
                start = time.perf_counter()
                run(model)
                seconds[name].append(time.perf_counter() - start)
        base = statistics.median(seconds["map only (before)"])
        for name, times in seconds.items():
            median = statistics.median(times)
            print(f"| {backend} | {name} | {median:.2f} | {args.side ** 2 / median / 1e6:.2f} | {median / base:.3f} |")


if __name__ == "__main__":
    main()
