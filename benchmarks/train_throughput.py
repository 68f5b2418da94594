"""Training-step throughput: the captured step, the eager step and the study's pipeline.

For each patch size, the same model (DeepLabV3+, mobilenet_v2, encoder_depth 4) takes the
same number of optimiser steps at the same batch size on the demo scene, fed three ways:

* captured (CUDA only): aerialseg's training step (`aerialseg.train`), patches gathered on
  the device from the uint8 image, normalised, forward, weighted loss, backward, Adam step
  and bookkeeping, replayed as one CUDA graph per step (`device.GraphedStep`, in strict mode:
  a step that cannot be captured stops the benchmark with the root cause); and the same with
  PyTorch's fused Adam kernel (``fused=True``) instead of its default multi-tensor one;
* eager: the same step with capture turned off (``train.capture: false``), its kernels
  launched one by one from Python, with the eager default Adam (not ``capturable``);
* study: the study's pipeline, a torch Dataset that crops each patch from a PIL image,
  converts it with torchvision's ToTensor and Normalize, and a DataLoader that collates them
  (cycling through the patches as often as the steps need), then the same model step.

Every pipeline runs its warm-up steps first (on CUDA they include the capture), then the
timed steps, with one device synchronisation before and one after: milliseconds per step,
patches per second and the speed-ups (ratios of step times), all measured in the same run.
No pipeline augments, as the study did not (the workflow's default, ``train.augment: false``).

    python benchmarks/train_throughput.py [--sizes 32 64 128] [--steps 50] [--batch-size 32] [--device auto]
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial

import numpy as np
import torch

from aerialseg import demo, device as devices, train
from aerialseg.io.labels import decode_colors
from aerialseg.model import ModelSpec, build, input_transform
from aerialseg.patches import grid

WARMUP = 5  # on CUDA: three eager warm-up steps, the capture, one replay


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fresh_model(device, how=None):
    torch.manual_seed(0)
    spec = ModelSpec(5, "scratch")
    how = how or devices.compute_for_training(device)
    model = how.format(build(spec).to(device))
    model.train()
    return spec, model


def run_aerialseg(image, ids, corners, size, batch, steps, device, capture, fused=False, precision="auto",
                  memory_format="auto") -> float:
    """Seconds per step of `train._train_step`, as `train.fit` runs it."""
    how = devices.compute_for_training(device, precision, memory_format)
    spec, model = fresh_model(device, how)
    settings = train.TrainSettings(epochs=1, batch_size=batch, lr=1e-3, seed=0, capture=capture)
    optimizer = train.make_optimizer(model, settings, device, **({"fused": True} if fused else {}))
    image_t, labels_t = train.to_tensors(image, ids, device)
    generator = torch.Generator().manual_seed(0)
    batches = train._Batches(WARMUP + steps, batch, spec.n_classes, device, loss_terms=1)
    picks = torch.randint(len(corners), (WARMUP + steps, batch), generator=generator)
    batches.start(torch.tensor(corners)[picks].to(device))
    inputs = train.StepInputs(model, input_transform(spec, device, how), image_t, labels_t, size,
                              torch.ones(spec.n_classes, device=device), how)
    step = devices.GraphedStep(partial(train._train_step, batches, inputs, optimizer), device,
                               eager_because=None if capture else "capture is turned off (train.capture: false)",
                               name="training step")
    for _ in range(WARMUP):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    if capture and step.mode != "CUDA graph":
        raise RuntimeError(f"the training step was not captured: {step.summary()}")
    return (time.perf_counter() - start) / steps


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


def run_study(image, ids, corners, size, batch, steps, device, workers) -> float:
    """Seconds per step of the study's PIL DataLoader feeding the same eager model step."""
    spec, model = fresh_model(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    weight = torch.ones(spec.n_classes, device=device)
    loader = torch.utils.data.DataLoader(
        PilPatches(image, ids, corners, size, spec), batch_size=batch, shuffle=True,
        num_workers=workers, drop_last=True, generator=torch.Generator().manual_seed(0),
    )

    def cycle():  # as many epochs as the steps need, reshuffled each time
        while True:
            yield from loader

    batches = cycle()
    for i in range(WARMUP + steps):
        if i == WARMUP:
            sync(device)
            start = time.perf_counter()
        x, y = next(batches)
        x, y = devices.channels_last(x.to(device)), y.to(device)
        with devices.autocast(device):
            logits = model(x)
        total, count = train.weighted_loss(logits.float(), y, weight)
        loss = total / count.clamp_min(1e-12)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return (time.perf_counter() - start) / steps


def main() -> None:
    os.environ[devices.STRICT_CAPTURE_ENV] = "1"  # a step that cannot be captured fails the benchmark
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 50 on CUDA, 5 on the CPU)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the study's pipeline")
    parser.add_argument("--scene", type=int, default=1024)
    parser.add_argument("--variants", action="store_true", help="on the CPU: precision x memory format side by side")
    args = parser.parse_args()
    device = devices.resolve(args.device)
    steps = args.steps or (50 if device.type == "cuda" else 5)
    image, label = demo.render_scene(args.scene, seed=0)
    ids = decode_colors(label, list(demo.ISPRS_COLORS.values())[:5], [demo.ISPRS_COLORS["Clutter"]])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    cuda = device.type == "cuda"
    print(f"device: {name}; torch {torch.__version__}; batch {args.batch_size}; {WARMUP} warm-up + {steps} timed steps; "
          f"study's DataLoader workers: {args.workers}")
    if args.variants:
        variants(image, ids, args, steps, device)
        return
    print("| patch | study's pipeline (ms/step) | eager step (ms/step) | captured step (ms/step) "
          "| captured, fused Adam (ms/step) | captured (patches/s) | speed-up: captured over eager "
          "| captured over study | eager over study |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for size in args.sizes:  # a row as soon as it is measured: a run cut short keeps what it did
        corners = grid(args.scene, args.scene, size, size // 2)[["row", "col"]].to_numpy()
        study = run_study(image, ids, corners, size, args.batch_size, steps, device, args.workers)
        eager = run_aerialseg(image, ids, corners, size, args.batch_size, steps, device, capture=False)
        cells = [f"{1000 * study:.1f}", f"{1000 * eager:.1f}"]
        if cuda:
            captured = run_aerialseg(image, ids, corners, size, args.batch_size, steps, device, capture=True)
            fused = run_aerialseg(image, ids, corners, size, args.batch_size, steps, device, capture=True, fused=True)
            cells += [f"{1000 * captured:.1f}", f"{1000 * fused:.1f}", f"{args.batch_size / captured:.0f}",
                      f"{eager / captured:.1f}x", f"{study / captured:.1f}x", f"{study / eager:.2f}x"]
        else:
            cells += ["(CUDA only)", "(CUDA only)", "", "", "", f"{study / eager:.2f}x"]
        print(f"| {size} | " + " | ".join(cells) + " |", flush=True)


VARIANTS = [("float32", "contiguous"), ("float32", "channels_last"), ("bf16", "contiguous"), ("bf16", "channels_last")]


def variants(image, ids, args, steps, device) -> None:
    """The eager step in float32 and bf16 autocast, contiguous and channels-last, against
    float32 contiguous (the CPU's default, `device.compute`)."""
    print("| patch | " + " | ".join(f"{p} {m} (ms/step)" for p, m in VARIANTS) + " | best over float32 contiguous |")
    print("|---:|" + "---:|" * (len(VARIANTS) + 1), flush=True)
    for size in args.sizes:
        corners = grid(args.scene, args.scene, size, size // 2)[["row", "col"]].to_numpy()
        times = [run_aerialseg(image, ids, corners, size, args.batch_size, steps, device, capture=False, precision=p,
                               memory_format=m) for p, m in VARIANTS]
        best = min(range(len(times)), key=times.__getitem__)
        print(f"| {size} | " + " | ".join(f"{1000 * t:.1f}" for t in times)
              + f" | {times[0] / times[best]:.2f}x ({' '.join(VARIANTS[best])}) |", flush=True)


if __name__ == "__main__":
    main()
