"""int8 on the CPU, measured: a trained model.pt exported to ONNX, then quantised by ONNX
Runtime (static quantisation, QDQ format, int8 weights per channel, activations calibrated
on windows of the training image: `aerialseg.quantize`, what `aerialseg export --int8` writes),
and both graphs mapping the test image with the host
mosaic at the study's stride: seconds, Mpx/s, the share of class ids that differ, and the
test mIoU of each against the label.

    python benchmarks/int8.py MODEL.pt TRAIN_IMAGE TEST_IMAGE TEST_LABEL [--threads 2] [--windows 256]

aerialseg offers int8 only if the test mIoU moves by less than 0.005 (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def map_ids(model, image: np.ndarray, size: int, stride: int) -> tuple[np.ndarray, float]:
    from aerialseg import host_mosaic

    start = time.perf_counter()
    ids = np.concatenate([b for _, b in host_mosaic.iter_ids(model.scores, image,
                                                               int(model.meta["spec"]["n_classes"]),
                                                               host_mosaic.Tiling(size, stride))])
    return ids, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("train_image", type=Path)
    parser.add_argument("test_image", type=Path)
    parser.add_argument("test_label", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--windows", type=int, default=256, help="calibration windows (aerialseg.quantize.WINDOWS)")
    args = parser.parse_args()
    from aerialseg import backends, quantize
    from aerialseg.io.labels import read_label
    from aerialseg.io.read import open_image
    from aerialseg.io.spec import DataSpec
    from aerialseg.metrics import confusion_matrix, mean_iou

    fp32 = backends.onnx_bytes(args.model)
    model = backends.OnnxModel.load_logits(fp32, args.model, args.threads)  # as the mosaic runs it
    spec = DataSpec.from_config({"data": model.meta["data"]})
    size, stride = model.meta["patch_size"], model.meta["predict"]["stride"]

    def read(path):
        with open_image(path, spec, spec.nodata) as image:
            return image.rows(0, image.height)[0]

    test = read(args.test_image)
    truth = read_label(args.test_label, spec)
    windows = quantize.calibration_windows(model, [args.train_image], args.windows)
    int8 = backends.OnnxModel.load_logits(quantize.quantize(fp32, model, windows, args.train_image.name), "int8",
                                          args.threads)
    rows, k = [], int(model.meta["spec"]["n_classes"])
    for name, runtime in (("float32", model), ("int8", int8)):
        map_ids(runtime, test[:size * 2], size, stride)  # warm-up
        ids, seconds = map_ids(runtime, test, size, stride)
        rows.append((name, ids, seconds, mean_iou(confusion_matrix(truth, ids, k))))
    mpx = test.shape[0] * test.shape[1] / 1e6
    print(f"{args.test_image.name}: {test.shape[1]} x {test.shape[0]} px, {size} px windows, stride {stride}, "
          f"{args.threads} threads")
    print("| graph | seconds | Mpx/s | speed-up | ids differing from float32 | test mIoU |")
    print("|---|---:|---:|---:|---:|---:|")
    base_ids, base_seconds = rows[0][1], rows[0][2]
    for name, ids, seconds, miou in rows:
        print(f"| {name} | {seconds:.1f} | {mpx / seconds:.2f} | {base_seconds / seconds:.2f}x | "
              f"{(ids != base_ids).mean() * 100:.3f} % | {miou:.4f} |")


if __name__ == "__main__":
    main()
