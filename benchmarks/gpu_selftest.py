"""GPU self-test: prove that the captured training and validation steps and the device
mosaic do what the workflow relies on, in under a minute on one GPU.

It runs in strict capture mode (`AERIALSEG_STRICT_CAPTURE=1`): a step that cannot be captured
stops the test with its root cause instead of falling back to eager steps. On a crop of the
Dubai training image (part 005; the demo scene when the Dubai folder is not found) it checks,
with the workflow's own model (DeepLabV3+, mobilenet_v2, encoder depth 4) and steps
(`aerialseg.train.Steps`):

1. capture: over two epochs the training and the validation steps are captured as CUDA
   graphs, every call after the warm-up calls is a replay, and the calls equal the steps;
2. bookkeeping: the confusion counts of each epoch sum to the pixels of its patches, and
   every step's loss is its own (each replay reads its own batch);
3. dropout: in train mode with a learning rate of 0, replays of one and the same batch give
   different losses (dropout draws fresh numbers on every replay);
4. no host sync: two replays pass under ``torch.cuda.set_sync_debug_mode("error")``;
5. captured = eager: two epochs of `train.fit` with and without capture give the same
   history within LOSS_RTOL (relative, losses) and SCORE_ATOL (absolute, accuracy and mIoU):
   only the bf16 kernels' non-deterministic atomics (bilinear upsampling's backward) differ;
6. device mosaic = CPU mosaic: the trained model predicts the crop in float32 (TF32 off) on
   the GPU and on the CPU; at most MOSAIC_MAX_SHARE of the pixels may get another class
   (argmax flips where two logits tie to within float32 rounding).

On the CPU (``--device cpu``) the checks that need CUDA are skipped and the others run
eagerly, so the script itself can be tested anywhere. Every check prints PASS, FAIL or SKIP
with its figures; the exit status is 1 if any failed.

    python benchmarks/gpu_selftest.py [DUBAI_DIR] [--device cuda] [--crop 512]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ["AERIALSEG_STRICT_CAPTURE"] = "1"  # before any step is built

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

from aerialseg import demo, device as devices, mosaic, train  # noqa: E402
from aerialseg.io.labels import decode_colors, load_pair  # noqa: E402
from aerialseg.io.spec import DataSpec  # noqa: E402
from aerialseg.model import ModelSpec, build, input_transform  # noqa: E402
from aerialseg.patches import Split, patch_index  # noqa: E402

LOSS_RTOL = 0.02
SCORE_ATOL = 0.02
MOSAIC_MAX_SHARE = 0.0005
PATCH, STRIDE, BATCH, EPOCHS = 64, 32, 16, 2
DATA_CANDIDATES = [ROOT / ".device/data/dubai-tile8", ROOT.parent / "shared/data/dubai-tile8", ROOT / "data/dubai"]


class Report:
    """PASS / FAIL / SKIP lines, each with its figures."""

    def __init__(self):
        self.failed, self.passed, self.skipped = [], 0, 0

    def check(self, name: str, ok: bool, detail: str) -> None:
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed.append(name)

    def skip(self, name: str, why: str) -> None:
        print(f"SKIP {name}: {why}", flush=True)
        self.skipped += 1


def load_crop(folder: Path | None, crop: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(image, class ids, what it is): the top-left crop of Dubai part 005, or the demo scene."""
    if folder is not None and (folder / "images/image_part_005.jpg").is_file():
        config = yaml.safe_load((ROOT / "config/dubai.yaml").read_text())
        spec = DataSpec(colors=tuple(tuple(c["color"]) for c in config["data"]["classes"]),
                               ignore_colors=tuple(map(tuple, config["data"]["ignore_colors"])))
        image, ids = load_pair(folder / "images/image_part_005.jpg", folder / "masks/image_part_005.png", spec)
        return image[:crop, :crop], ids[:crop, :crop], f"Dubai part 005, top-left {crop} x {crop} px"
    image, label = demo.render_scene(crop, seed=0)
    ids = decode_colors(label, list(demo.ISPRS_COLORS.values())[:5], [demo.ISPRS_COLORS["Clutter"]])
    return image, ids, f"the demo scene, {crop} x {crop} px (no Dubai folder found)"


def new_steps(image, ids, index, device, lr=1e-3, batch=BATCH, seed=0):
    train.seed_everything(seed)
    spec = ModelSpec(5, "scratch")
    model = devices.channels_last(build(spec).to(device))
    settings = train.TrainSettings(epochs=EPOCHS, batch_size=batch, lr=lr, seed=seed)
    optimizer = train.make_optimizer(model, settings, device)
    data = train.TrainingData(image, ids, index, PATCH, [1.0] * 5)
    return model, train.Steps(model, spec, data, settings, optimizer, device)


def check_steps(report: Report, image, ids, index, device) -> None:
    cuda = device.type == "cuda"
    model, steps = new_steps(image, ids, index, device)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(EPOCHS):
        steps.train_epoch(*steps.draw_epoch(generator))
        losses.append(steps.train.losses[:, 0].cpu())
        steps.validate()
    for name, step, batches in (("training", steps.train_step, steps.train), ("validation", steps.val_step, steps.val)):
        calls = EPOCHS * batches.steps
        if cuda:
            report.check(f"{name} step captured", step.graph is not None and step.calls == calls
                         and step.replays == calls - step.warmup, f"{step.summary()}; {calls} steps in {EPOCHS} epochs")
        else:
            report.check(f"{name} step calls", step.calls == calls, f"{step.summary()}; {calls} steps")
        pixels = batches.steps * batches.batch * PATCH * PATCH
        counted = int(batches.counts.sum())
        report.check(f"{name} confusion counts", counted == pixels,
                     f"{counted} counted (ignored included) of {pixels} pixels in the last epoch's patches")
    last = losses[-1]
    distinct = len(torch.unique(last))
    report.check("a loss per step", bool(torch.isfinite(last).all()) and distinct == len(last),
                 f"{distinct} distinct losses in {len(last)} steps of epoch {EPOCHS}, from {last.min():.4f} to {last.max():.4f}")
    if not cuda:
        report.skip("no host sync in a replay", "needs CUDA")
        return
    corners, flags = steps.draw_epoch(generator)
    steps.model.train()
    steps.train.start(corners, flags)
    torch.cuda.synchronize(device)
    torch.cuda.set_sync_debug_mode("error")
    try:
        steps.train_step()
        steps.train_step()
        ok, detail = True, "two replays ran under torch.cuda.set_sync_debug_mode('error')"
    except RuntimeError as error:
        ok, detail = False, f"{type(error).__name__}: {error}"
    finally:
        torch.cuda.set_sync_debug_mode("default")
    report.check("no host sync in a replay", ok, detail)


def check_dropout(report: Report, image, ids, index, device) -> None:
    """lr 0, every step the same batch: only dropout can make two losses differ. Small
    batches, so that the epoch has replays after the warm-up calls and the capture."""
    model, steps = new_steps(image, ids, index, device, lr=0.0, batch=4)
    one_batch = steps.draw_epoch(torch.Generator().manual_seed(1))[0][: steps.train.batch]
    steps.train_epoch(one_batch.repeat(steps.train.steps, 1), None)
    losses = steps.train.losses[:, 0].cpu()
    later = losses[steps.train_step.warmup + 1 :]  # replays of the captured graph, on CUDA
    differ = len(torch.unique(later)) == len(later) and len(later) >= 2
    report.check("dropout draws fresh numbers per step", differ,
                 f"{len(torch.unique(later))} distinct losses in {len(later)} {'replays' if steps.train_step.graph else 'calls'} "
                 f"of one batch at lr 0 ({steps.train_step.summary()})")


def check_histories(report: Report, image, ids, index, device):
    """Two epochs of fit, captured and eager; returns the captured run's model."""
    if device.type != "cuda":
        report.skip("captured history = eager history", "needs CUDA")
        return None
    histories, models = {}, {}
    for capture in (True, False):
        train.seed_everything(0)
        spec = ModelSpec(5, "scratch")
        models[capture] = build(spec)
        settings = train.TrainSettings(epochs=EPOCHS, batch_size=BATCH, lr=1e-3, seed=0, capture=capture)
        data = train.TrainingData(image, ids, index, PATCH, [1.0] * 5)
        histories[capture], _, _ = train.fit(models[capture], spec, data, settings, device)
    captured, eager = histories[True], histories[False]
    loss_gap = max(float((abs(captured[c] - eager[c]) / eager[c].abs()).max()) for c in ("train_loss", "val_loss"))
    score_gap = max(float(abs(captured[c] - eager[c]).max()) for c in ("train_acc", "train_miou", "val_acc", "val_miou"))
    report.check("captured history = eager history", loss_gap <= LOSS_RTOL and score_gap <= SCORE_ATOL,
                 f"losses within {loss_gap:.2%} (bound {LOSS_RTOL:.0%}), accuracy and mIoU within {score_gap:.4f} "
                 f"(bound {SCORE_ATOL}); val mIoU captured {captured.val_miou.iloc[-1]:.4f}, eager {eager.val_miou.iloc[-1]:.4f}")
    return models[True]


def check_mosaic(report: Report, model, image, device) -> None:
    if model is None:
        report.skip("device mosaic = CPU mosaic", "needs CUDA")
        return
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    spec = ModelSpec(5, "scratch")
    ids = {}
    for where in (device, torch.device("cpu")):
        net = model.to(where).eval()
        prepare = input_transform(spec, where)
        ids[where.type] = mosaic.predict_ids(lambda x: net(prepare(x)), image, 5,
                                             mosaic.Tiling(PATCH, STRIDE, batch_size=1024 if where.type == "cuda" else 64),
                                             device=where)
    differ = int((ids["cuda"] != ids["cpu"]).sum())
    bound = int(MOSAIC_MAX_SHARE * image.shape[0] * image.shape[1])
    report.check("device mosaic = CPU mosaic (float32)", differ <= bound,
                 f"{differ} of {ids['cpu'].size} pixels differ (bound {bound}, {MOSAIC_MAX_SHARE:.2%})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, help="the Dubai folder (images/, masks/)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--crop", type=int, default=512)
    args = parser.parse_args()
    began = time.perf_counter()
    device = devices.resolve(args.device)
    folder = args.data or next((c for c in DATA_CANDIDATES if c.is_dir()), None)
    image, ids, what = load_crop(folder, args.crop)
    index = patch_index(*ids.shape, PATCH, STRIDE, Split(0.2, seed=0))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"self-test on {name}, torch {torch.__version__}, strict capture; {what}; {PATCH} px patches, batch {BATCH}, "
          f"{EPOCHS} epochs", flush=True)
    report = Report()
    check_steps(report, image, ids, index, device)
    check_dropout(report, image, ids, index, device)
    model = check_histories(report, image, ids, index, device)
    check_mosaic(report, model, image, device)
    verdict = "FAIL (" + ", ".join(report.failed) + ")" if report.failed else "PASS"
    print(f"self-test: {verdict}: {report.passed} passed, {len(report.failed)} failed, {report.skipped} skipped "
          f"in {time.perf_counter() - began:.1f} s on {name}", flush=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
