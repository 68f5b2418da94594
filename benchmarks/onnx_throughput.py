"""Torch against ONNX Runtime on the CPU, on a real trained model: the model alone, then whole
maps end to end with the ``aerialseg predict`` command, against the code of another checkout
(today's release) in the same run.

Part 1, the model alone: the same uint8 windows through torch (NCHW; channels-last, as the
torch back-end runs; channels-last with batch norm folded) and through ONNX Runtime (the
exported graph), per shape: Mpx/s, the largest probability difference against torch, and the
share of pixels whose argmax differs.

Part 2, end to end: ``aerialseg predict MODEL.pt IMAGE -o DIR`` in a fresh process per run, the
wall time and peak resident memory (GNU time), for each image: the baseline checkout's command
(``--baseline-src``: its ``src`` folder), this checkout's with ``--backend torch``, and with its
default (ONNX Runtime): once exporting the model.pt (an empty cache) and once with the graph
cached; with ``--int8 FILE`` also with an int8 graph (``aerialseg export --int8``, opt-in).
The maps are compared pixel by pixel with the baseline's (or with the torch back-end's).
Images: ``--image`` files as given, and for each ``--sizes`` side a 3-band GeoTIFF tiled from
the first image (windowed writing), georeferenced, so that its map is a Cloud-Optimised GeoTIFF.

    python benchmarks/onnx_throughput.py results/cases/imagenet_p64/model.pt --image test.jpg \
        --sizes 5000 10000 --baseline-src ../baseline/src [--threads 2] [--skip-torch-above 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPES = [(16, 64), (64, 64), (256, 64), (64, 32), (16, 128), (4, 512)]


def model_only(model_pt: Path, threads: int) -> None:
    import torch

    from aerialseg import backends
    from aerialseg.model import fold_batchnorm, load_checkpoint, normalize

    torch.set_num_threads(threads)
    net, spec, _ = load_checkpoint(model_pt)
    graph = backends.onnx_bytes(model_pt)
    onnx_model = backends.OnnxModel.load(graph, model_pt, threads)
    onnx_logits = backends.OnnxModel.load_logits(graph, model_pt, threads)  # as the mosaic runs it
    last = net.to(memory_format=torch.channels_last)
    import copy

    folded = fold_batchnorm(copy.deepcopy(net)).to(memory_format=torch.channels_last)
    print(f"\n## The model alone ({spec.architecture} {spec.encoder}, {spec.n_classes} classes; {threads} threads)\n")
    print("| batch x window | torch NCHW (Mpx/s) | torch channels-last | channels-last, BN folded | ONNX Runtime "
          "| ORT without softmax (the mosaic's) | that over channels-last | largest prob. difference | "
          "argmax differs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for batch, size in SHAPES:
        windows = rng.integers(0, 256, (batch, size, size, spec.in_channels), dtype=np.uint8)
        x = normalize(torch.from_numpy(windows).permute(0, 3, 1, 2), spec)
        runs = {
            "nchw": lambda: net(x.contiguous()),
            "last": lambda: last(x.contiguous(memory_format=torch.channels_last)),
            "folded": lambda: folded(x.contiguous(memory_format=torch.channels_last)),
            "ort": lambda: onnx_model.outputs(windows),
            "logits": lambda: onnx_logits.outputs(windows),
        }
        speed, out = {}, {}
        with torch.no_grad():
            for name, run in runs.items():
                out[name] = run()  # warm-up
                seconds = _best_of(run, repeats=3)
                speed[name] = batch * size * size / seconds / 1e6
        reference = torch.softmax(out["nchw"], 1).numpy()
        ort = out["ort"]
        print(f"| {batch} x {size} px | {speed['nchw']:.2f} | {speed['last']:.2f} | {speed['folded']:.2f} | "
              f"{speed['ort']:.2f} | {speed['logits']:.2f} | {speed['logits'] / speed['last']:.2f}x | "
              f"{np.abs(ort - reference).max():.1e} | "
              f"{(ort.argmax(1) != reference.argmax(1)).mean() * 100:.4f} % |", flush=True)


def _best_of(run, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def tiled_geotiff(source: Path, side: int, out: Path) -> Path:
    """A side x side 3-band GeoTIFF (UTM, 0.5 m) tiled from ``source``, written in windows."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from aerialseg.io.read import read_image

    tile = np.asarray(read_image(source))[:, :, :3]
    profile = dict(driver="GTiff", width=side, height=side, count=3, dtype="uint8", crs="EPSG:32640",
                   transform=from_origin(300000, 2800000, 0.5, 0.5), tiled=True, blockxsize=256, blockysize=256,
                   compress="deflate")
    h, w = tile.shape[:2]
    with rasterio.open(out, "w", **profile) as dataset:
        for top in range(0, side, 512):
            rows = min(512, side - top)
            band = np.empty((rows, side, 3), np.uint8)
            for col in range(0, side, w):
                r = (np.arange(top, top + rows) % h)[:, None]
                c = (np.arange(col, min(col + w, side)) % w)[None, :]
                band[:, col : col + c.shape[1]] = tile[r, c]
            dataset.write(band.transpose(2, 0, 1), window=Window(0, top, side, rows))
    return out


def run_predict(src: Path, model_pt: Path, image: Path, out: Path, threads: int, env_extra: dict,
                *options: str) -> tuple[float, float]:
    """``aerialseg predict`` of ``src`` (a package folder) in a fresh process: (seconds, peak MiB)."""
    env = {**os.environ, "PYTHONPATH": str(src), **env_extra}
    timing = out.with_suffix(".time")
    command = ["/usr/bin/time", "-f", "%e %M", "-o", str(timing), sys.executable, "-m", "aerialseg.cli", "predict",
               str(model_pt), str(image), "-o", str(out), "--threads", str(threads), *options]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    seconds, kib = timing.read_text().split()[-2:]
    return float(seconds), int(kib) / 1024


def read_map(folder: Path, image: Path) -> np.ndarray:
    from aerialseg.io.read import read_image

    for suffix in (".tif", ".png"):
        path = folder / f"{image.stem}{suffix}"
        if path.is_file():
            return np.asarray(read_image(path))[:, :, 0] if suffix == ".png" else _read_tif(path)
    raise FileNotFoundError(folder / image.stem)


def _read_tif(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as dataset:
        return dataset.read(1)


def end_to_end(args, work: Path, inputs: list[Path]) -> None:
    here = Path(__file__).resolve().parents[1] / "src"
    print(f"\n## End to end: `aerialseg predict MODEL.pt IMAGE -o DIR --threads {args.threads}`, default settings\n")
    print("| image | Mpx | code | back-end | seconds | Mpx/s | peak MiB | speed-up over baseline | ids differing |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|")
    for image in inputs:
        from aerialseg.io.read import image_size

        height, width = image_size(image)
        mpx = height * width / 1e6
        runs = []
        cache = {"AERIALSEG_CACHE": str(work / f"cache-{image.stem}")}
        if mpx <= args.skip_torch_above:  # torch takes minutes a map above
            runs += [("baseline", args.baseline_src, "torch (its default)", (), {})] if args.baseline_src else []
            runs += [("this", here, "torch", ("--backend", "torch"), {})]
        runs += [("this", here, "ONNX Runtime, exporting", (), cache),
                 ("this", here, "ONNX Runtime, cached graph", (), cache)]
        runs += [("this", here, "ONNX Runtime, int8 graph (opt-in)", (), {})] if args.int8 else []
        reference, base_seconds = None, None
        for index, (code, src, label, options, env) in enumerate(runs):
            model = args.int8 if "int8" in label else args.model
            outs = [work / f"{image.stem}-{index}-{repeat}" for repeat in range(1 if "exporting" in label else args.repeats)]
            seconds, peak = min(run_predict(src, model, image, out, args.threads, env, *options) for out in outs)
            out = outs[-1]
            ids = read_map(out, image)
            if reference is None:
                reference, base_seconds = ids, (seconds if code == "baseline" else None)
            ratio = f"{base_seconds / seconds:.2f}x" if base_seconds else "-"
            print(f"| {image.name} | {mpx:.1f} | {code} | {label} | {seconds:.1f} | {mpx / seconds:.2f} | {peak:.0f} | "
                  f"{ratio} | {(ids != reference).sum()} ({(ids != reference).mean() * 100:.4f} %) |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a trained model.pt")
    parser.add_argument("--image", type=Path, action="append", default=[], help="an image to map (repeatable)")
    parser.add_argument("--sizes", type=int, nargs="*", default=[], help="sides of tiled GeoTIFFs to map")
    parser.add_argument("--baseline-src", type=Path, help="the src folder of the checkout to compare with")
    parser.add_argument("--skip-torch-above", type=float, default=30.0,
                        help="Mpx above which the baseline and the torch back-end are not run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--int8", type=Path, help="also map with this int8 graph (aerialseg export --int8)")
    parser.add_argument("--no-model-only", dest="model_only", action="store_false")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each map, the fastest shown")
    args = parser.parse_args()
    import onnxruntime
    import torch

    from _machine import describe

    print(f"machine: {describe()}; Python {platform.python_version()}, torch {torch.__version__}, "
          f"ONNX Runtime {onnxruntime.__version__}; {time.strftime('%Y-%m-%d')}")
    if args.model_only:
        model_only(args.model, args.threads)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        inputs = list(args.image)
        inputs += [tiled_geotiff(args.image[0], side, work / f"tiled_{side}.tif") for side in args.sizes]
        end_to_end(args, work, inputs)


if __name__ == "__main__":
    main()
