"""Training-step throughput: aerialseg's on-device batches against a per-patch PIL pipeline.

For each patch size, the same model (DeepLabV3+, mobilenet_v2, encoder_depth 4) takes the
same number of optimiser steps on the demo scene, fed two ways:

* aerialseg: image and label live on the training device as uint8 tensors; each batch is
  gathered by indexing and normalised on the device (`aerialseg.train`);
* baseline (the study's pipeline): a torch Dataset that crops each patch from a PIL image,
  converts it with torchvision's ToTensor and Normalize, and a DataLoader that collates them.

Reported: patches per second of the whole step, the share of step time spent outside the
model (getting the batch ready), and the ratio of the two pipelines, measured in the same run.

    python benchmarks/train_throughput.py [--steps 8] [--batch-size 16] [--device auto]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aerialseg import demo  # noqa: E402
from aerialseg.images import decode_colors  # noqa: E402
from aerialseg.model import ModelSpec, build, normalize  # noqa: E402
from aerialseg.patches import grid  # noqa: E402
from aerialseg.train import autocast, gather, resolve_device, weighted_loss  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def model_step(model, optimizer, x, y, weight, device):
    with autocast(device):
        logits = model(x)
    total, count = weighted_loss(logits.float(), y, weight)
    loss = total / count.clamp_min(1e-12)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def timed_steps(next_batch, model, optimizer, weight, device, steps):
    """Seconds spent getting batches ready and in the model, over ``steps`` steps after two
    warm-up steps; ``next_batch()`` returns a batch (x normalised, y) on the device."""
    data_s = model_s = 0.0
    for step in range(steps + 2):
        t0 = time.perf_counter()
        x, y = next_batch()
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        sync(device)
        t1 = time.perf_counter()
        model_step(model, optimizer, x, y, weight, device)
        sync(device)
        t2 = time.perf_counter()
        if step >= 2:
            data_s += t1 - t0
            model_s += t2 - t1
    return data_s, model_s


def run_ours(model, optimizer, spec, image, ids, corners, size, batch_size, steps, weight, device):
    image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(device)
    labels_t = torch.from_numpy(ids).to(device)
    corners_t = torch.tensor(corners, device=device)
    generator = torch.Generator().manual_seed(0)

    def next_batch():
        batch = torch.randint(len(corners_t), (batch_size,), generator=generator).to(device)
        x, y = gather(image_t, labels_t, corners_t[batch], size)
        return normalize(x, spec), y

    return timed_steps(next_batch, model, optimizer, weight, device, steps)


class PilPatches(torch.utils.data.Dataset):
    """The study's pipeline: crop each patch from PIL images, ToTensor + Normalize."""

    def __init__(self, image, ids, corners, size, spec):
        from PIL import Image
        from torchvision import transforms

        self.image, self.label = Image.fromarray(image), Image.fromarray(ids)
        self.corners, self.size = corners, size
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(spec.mean, spec.std)])

    def __len__(self):
        return len(self.corners)

    def __getitem__(self, i):
        r, c = (int(v) for v in self.corners[i])
        box = (c, r, c + self.size, r + self.size)
        x = self.transform(self.image.crop(box))
        y = torch.from_numpy(np.array(self.label.crop(box), dtype=np.int64))
        return x, y


def run_baseline(model, optimizer, spec, image, ids, corners, size, batch_size, steps, weight, device, workers):
    loader = torch.utils.data.DataLoader(
        PilPatches(image, ids, corners, size, spec), batch_size=batch_size, shuffle=True,
        num_workers=workers, drop_last=True, generator=torch.Generator().manual_seed(0),
    )
    batches = iter(loader)

    def next_batch():
        x, y = next(batches)
        return x.to(device), y.to(device)

    return timed_steps(next_batch, model, optimizer, weight, device, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the baseline")
    parser.add_argument("--scene", type=int, default=1024)
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    image, label = demo.render_scene(args.scene, seed=0)
    ids = decode_colors(label, list(demo.ISPRS_COLORS.values())[:5], [demo.ISPRS_COLORS["Clutter"]])
    weight = torch.ones(5, device=device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; batch {args.batch_size}; {args.steps} timed steps; baseline DataLoader workers: {args.workers}")
    print("| patch | aerialseg patches/s | baseline patches/s | speed-up | outside model, aerialseg | outside model, baseline |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        corners = grid(args.scene, args.scene, size, size // 2)[["row", "col"]].to_numpy()
        results = {}
        for name_, runner in (("ours", run_ours), ("baseline", run_baseline)):
            spec = ModelSpec(5, "scratch")
            model = build(spec).to(device)
            if device.type == "cuda":
                model = model.to(memory_format=torch.channels_last)
            model.train()
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            extra = (args.workers,) if runner is run_baseline else ()
            results[name_] = runner(model, optimizer, spec, image, ids, corners, size, args.batch_size,
                                    args.steps, weight, device, *extra)
        rate = {k: args.steps * args.batch_size / sum(v) for k, v in results.items()}
        share = {k: v[0] / sum(v) for k, v in results.items()}
        print(f"| {size} | {rate['ours']:.1f} | {rate['baseline']:.1f} | {rate['ours'] / rate['baseline']:.2f} | "
              f"{share['ours']:.1%} | {share['baseline']:.1%} |")


if __name__ == "__main__":
    main()
