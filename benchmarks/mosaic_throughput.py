"""Mosaic prediction: throughput and memory against the study's patch-by-patch loop.

Two predictions of the same image with the same model (DeepLabV3+, mobilenet_v2, in the
precision and memory format the workflow uses on the device) and the same stride, each in a
fresh process, after a warm-up prediction (aerialseg: of an image of the same size, so that
the timed run meets no batch shape for the first time and pays no cuDNN algorithm search or
allocation; the baseline's batch of one window has one shape, so a small image warms it up):

* aerialseg: `aerialseg.mosaic.predict_ids` as the predict rule runs it: the image goes to
  the device a band at a time, windows are cut there and predicted in batches of the
  workflow's default size for the device (a window row of at most 64 on the CPU, about 4 Mpx
  on a GPU), their logits
  summed there, and only class ids come back;
* baseline (the study's approach): one window at a time (a batch of one), its logits copied
  back and summed into a full-size (classes, H, W) array on the host, divided by a full-size
  count, then argmax.

Reported: megapixels of image per second, the peak resident memory of the process above its
state after the imports and the image (and on CUDA the peak GPU memory), the ratios, and
whether the two id maps agree pixel for pixel. A second part predicts a 20000 x 20000 image
with aerialseg alone to show that memory stays bounded; there the model is a stand-in (a 1 x 1
convolution) because the real model would take hours on a CPU, and the memory of the mosaic
does not depend on the model beyond one batch of activations.

    python benchmarks/mosaic_throughput.py [--size 1024] [--patch 64] [--huge 20000] [--device auto]
    python benchmarks/mosaic_throughput.py --variants [--image IMG --model model.pt --label LBL]

With ``--variants`` (the CPU): float32 and bf16 autocast, each in contiguous and channels-last
memory format, side by side on one image, against float32 contiguous: Mpx/s, the speed-up,
the share of class ids that differ, and with a trained model and a label the test mIoU. With a
model, each variant predicts the image exactly as the predict rule does (`inference.load_model`:
the checkpoint's bands, value range and no-data), after a warm-up on the image itself.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent  # the children run here, where they find _memory

CHILD = r"""
import json, sys, time
import numpy as np, torch
from aerialseg import inference, device as devices, mosaic
from aerialseg.model import ModelSpec, build, input_transform
from aerialseg.patches import grid
mode, model_kind, size, patch, stride, device_name, ids_path = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6]), sys.argv[6], sys.argv[7]
device = devices.resolve(device_name)
torch.manual_seed(0)
if model_kind == "real":  # as the workflow predicts on this device (device.compute: precision, memory format)
    spec = ModelSpec(5, "scratch")
    how = devices.compute(device)
    net = how.format(build(spec).to(device).eval())
    prepare = input_transform(spec, device, how)
    def predictor(x):
        with how.autocast():
            return net(prepare(x))
else:
    conv = torch.nn.Conv2d(3, 5, 1).to(device)
    predictor = lambda x: conv(x.float() / 255)
from aerialseg.patches import window_starts
batch = mosaic.default_batch_size(patch, len(window_starts(size, patch, stride)), device)

def baseline(image):
    height, width = image.shape[:2]
    total = torch.zeros((5, height, width)); count = torch.zeros((height, width))
    for r, c in grid(height, width, patch, stride)[["row", "col"]].to_numpy():
        window = torch.from_numpy(image[r:r + patch, c:c + patch]).permute(2, 0, 1)[None].to(device)
        total[:, r:r + patch, c:c + patch] += predictor(window)[0].float().cpu()
        count[r:r + patch, c:c + patch] += 1
    return (total / count).argmax(0).to(torch.uint8).numpy()

def ours(image):
    return mosaic.predict_ids(predictor, image, 5, mosaic.Tiling(patch, stride, batch_size=batch), device=device)

run = ours if mode == "aerialseg" else baseline
image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
from _memory import peak_kib, rss_kib
start_kb = rss_kib()  # after the imports and the image, before any prediction
with torch.no_grad():  # warm-up: library handles, kernel choice for every batch shape
    run(image if mode == "aerialseg" and model_kind == "real" else np.zeros((2 * patch, 2 * patch, 3), np.uint8))
if device.type == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
t = time.perf_counter()
with torch.no_grad():
    ids = run(image)
seconds = time.perf_counter() - t
peak_kb = peak_kib()
if ids_path != "-":
    np.save(ids_path, ids)
gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0.0
name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
print(json.dumps({"seconds": seconds, "start_kb": start_kb, "peak_kb": peak_kb, "gpu_mb": gpu_mb, "batch": batch, "name": name}))
"""


VARIANT = r"""
import json, sys, time
import numpy as np, torch
from aerialseg import inference, device as devices, mosaic
from aerialseg.model import ModelSpec, build, input_transform
precision, memory_format, image_path, model_path, ids_path, patch, threads = sys.argv[1:6] + [*map(int, sys.argv[6:8])]
torch.set_num_threads(threads)
if model_path == "-":  # an untrained model on a random image: speed only
    torch.manual_seed(0)
    spec, device = ModelSpec(5, "scratch"), torch.device("cpu")
    how = devices.compute(device, precision, memory_format)
    net, prepare = how.format(build(spec).eval()), input_transform(spec, device, how)
    def predictor(x):
        with how.autocast():
            return net(prepare(x))
    side = int(image_path.split(":")[1])
    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    run = lambda: mosaic.predict_ids(predictor, image, spec.n_classes, mosaic.Tiling(patch, patch // 2))
else:  # a trained model on a real image, exactly as the predict rule runs it (bands, value range, no-data)
    from aerialseg.config import sections

    settings = sections(train={}, predict={"stride": None, "device": "cpu", "threads": threads, "backend": "torch",
                                           "precision": precision, "memory_format": memory_format})
    model = inference.load_model(inference.PredictOptions.from_settings(settings, threads), model_path)
    how = devices.compute(model.device, precision, memory_format)
    def run():
        with model.open(image_path) as image:
            ids = np.empty(image.shape, np.uint8)
            for top, block in model.iter_ids(image):
                ids[top : top + len(block)] = block
        return ids
with torch.no_grad():
    run()  # warm-up on the timed image itself: every batch shape met once
    start = time.perf_counter()
    ids = run()
    seconds = time.perf_counter() - start
np.save(ids_path, ids)
print(json.dumps({"seconds": seconds, "pixels": int(ids.size), "how": how.describe()}))
"""

VARIANTS = [("float32", "contiguous"), ("float32", "channels_last"), ("bf16", "contiguous"), ("bf16", "channels_last")]


def variants(image: str, model: str, label: str | None, patch: int, threads: int) -> None:
    """The CPU's precision x memory format variants on one image, against float32 contiguous:
    throughput, the share of class ids that differ, and with a label and a trained model the
    test mIoU of each (the label decoded as the checkpoint's classes say)."""
    import numpy as np

    from aerialseg.io.labels import read_label
    from aerialseg.io.spec import DataSpec
    from aerialseg.metrics import confusion_matrix, mean_iou
    from aerialseg.model import read_trusted

    truth, n_classes = None, 5
    if label and model != "-":
        data = read_trusted(Path(model), what="checkpoint", remedy="use a model.pt the workflow wrote")["data"]
        truth, n_classes = read_label(label, DataSpec.from_config({"data": data})), len(data["classes"])
    print(f"\nCPU variants, {threads} threads; {image if not image.startswith('random') else 'a random image'}, "
          f"{'the model ' + model if model != '-' else 'an untrained DeepLabV3+ mobilenet_v2'}")
    print("| precision | memory format | Mpx/s | speed-up over float32 contiguous | class ids differing from float32 contiguous "
          + ("| test mIoU |" if truth is not None else "|"))
    print("|---|---|---:|---:|---:|" + ("---:|" if truth is not None else ""), flush=True)
    reference = reference_seconds = None
    with tempfile.TemporaryDirectory() as tmp:
        for precision, memory_format in VARIANTS:
            out = Path(tmp) / f"{precision}_{memory_format}.npy"
            command = [sys.executable, "-c", VARIANT, precision, memory_format, image, model, str(out), str(patch),
                       str(threads)]
            child = subprocess.run(command, capture_output=True, text=True, cwd=HERE)
            if child.returncode != 0:
                raise SystemExit(f"the {precision} {memory_format} prediction failed:\n{child.stderr[-3000:]}")
            result = json.loads(child.stdout.splitlines()[-1])
            ids = np.load(out)
            if reference is None:
                reference, reference_seconds = ids, result["seconds"]
            differ = float((ids != reference).mean())
            cells = [precision, memory_format, f"{result['pixels'] / 1e6 / result['seconds']:.2f}",
                     f"{reference_seconds / result['seconds']:.2f}x", f"{differ:.3%}"]
            if truth is not None:
                cells.append(f"{mean_iou(confusion_matrix(truth, ids, n_classes)):.4f}")
            print("| " + " | ".join(cells) + " |", flush=True)


def measure(mode, model, size, patch, stride, device, ids_path="-") -> dict:
    command = [sys.executable, "-c", CHILD, mode, model, str(size), str(patch), str(stride), device, str(ids_path)]
    child = subprocess.run(command, capture_output=True, text=True, cwd=HERE)
    if child.returncode != 0:  # a CUDA error, say: show what the child said, not only its exit status
        raise SystemExit(f"the {mode} prediction ({model} model, {size} px, on {device}) failed with exit status "
                         f"{child.returncode}:\n{child.stderr[-4000:]}")
    return json.loads(child.stdout.splitlines()[-1])


def main() -> None:
    import numpy as np
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=None, help="side of the compared image (default 1024, 2048 on CUDA)")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--stride", type=int, default=None, help="default: half the patch")
    parser.add_argument("--huge", type=int, default=20000, help="side of the bounded-memory run (0: skip)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variants", action="store_true", help="on the CPU: precision x memory format side by side")
    parser.add_argument("--image", default=None, help="with --variants: a real image (default: a random one)")
    parser.add_argument("--label", default=None, help="with --variants and --model: its label, for the test mIoU")
    parser.add_argument("--model", default="-", help="with --variants: a model.pt (default: an untrained model)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.variants:
        variants(args.image or f"random:{args.size or 1024}", args.model, args.label, args.patch, args.threads)
        return
    stride = args.stride or args.patch // 2
    size = args.size or (2048 if args.device == "cuda" else 1024)
    print(f"torch {torch.__version__}; {size} x {size} px, DeepLabV3+ mobilenet_v2, patch {args.patch}, stride {stride}")
    print("| prediction | device | batch | Mpx/s | peak host memory above image (MiB) | peak GPU memory (MiB) | seconds |")
    print("|---|---|---:|---:|---:|---:|---:|", flush=True)
    runs, ids = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("aerialseg", "baseline"):  # each row as soon as it is measured
            r = runs[mode] = measure(mode, "real", size, args.patch, stride, args.device, Path(tmp) / f"{mode}.npy")
            ids[mode] = np.load(Path(tmp) / f"{mode}.npy")
            gpu = f"{r['gpu_mb']:.0f}" if args.device == "cuda" else "-"
            print(f"| {mode} | {r['name']} | {r['batch'] if mode == 'aerialseg' else 1} | {size ** 2 / 1e6 / r['seconds']:.2f} "
                  f"| {(r['peak_kb'] - r['start_kb']) / 1024:.0f} | {gpu} | {r['seconds']:.2f} |", flush=True)
    speed = runs["baseline"]["seconds"] / runs["aerialseg"]["seconds"]
    differ = int((ids["baseline"] != ids["aerialseg"]).sum())
    same = "identical class ids" if not differ else f"class ids differ at {differ} of {size * size} pixels ({differ / size ** 2:.4%})"
    print(f"aerialseg vs baseline: {speed:.1f}x the throughput; {same}")
    if args.huge:
        r = measure("aerialseg", "standin", args.huge, args.patch, stride, args.device)
        image_mib = args.huge ** 2 * 3 / 2**20
        gpu = f", peak GPU memory {r['gpu_mb']:.0f} MiB" if args.device == "cuda" else ""
        print(f"{args.huge} x {args.huge} px (image {image_mib:.0f} MiB, stand-in model): peak resident memory "
              f"{r['peak_kb'] / 1024:.0f} MiB in all, {(r['peak_kb'] - r['start_kb']) / 1024:.0f} MiB above the image{gpu}; "
              f"{r['seconds']:.0f} s")
    if differ and args.device == "cpu":
        raise SystemExit("on the CPU the two mosaics must be identical")


if __name__ == "__main__":
    main()
