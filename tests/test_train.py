import functools
import re
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch

from aerialseg.class_ids import IGNORE_INDEX
from aerialseg.model import ModelSpec, build, normalize
from aerialseg.patches import Split, patch_index
from aerialseg import train
from aerialseg.device import compute_for_training
from aerialseg.errors import DivergenceError
from aerialseg.train import (HISTORY_COLUMNS, Resume, TrainingData, TrainSettings, fit, gather, seed_everything,
                             weighted_loss)



def _resume(path, fingerprint):
    """Where a test run keeps its state (none: path None), under ``fingerprint``."""
    return Resume(path, fingerprint) if path is not None else None

def test_gather_equals_slicing():
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.integers(0, 256, (3, 40, 50), dtype=np.uint8))
    labels = torch.from_numpy(rng.integers(0, 5, (40, 50), dtype=np.uint8))
    corners = torch.tensor([[0, 0], [8, 18], [24, 34]])
    x, y = gather(image, labels, corners, 16)
    assert x.shape == (3, 3, 16, 16) and y.shape == (3, 16, 16)
    for i, (r, c) in enumerate(corners.tolist()):
        assert torch.equal(x[i], image[:, r : r + 16, c : c + 16])
        assert torch.equal(y[i], labels[r : r + 16, c : c + 16])


def test_weighted_loss_matches_pytorch_and_skips_ignored():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    target[0, 0] = IGNORE_INDEX
    weight = torch.tensor([1.0, 5.0, 0.5])
    total, weight_sum = weighted_loss(logits, target, weight)
    expected = torch.nn.functional.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE_INDEX)
    assert float(total / weight_sum) == pytest.approx(float(expected), rel=1e-6)
    all_ignored = torch.full_like(target, IGNORE_INDEX)
    assert float(weighted_loss(logits, all_ignored, weight)[1]) == 0


def _tiny_run(seed=0):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ids = (image[:, :, 0] > 127).astype(np.uint8)
    ids[:4, :4] = IGNORE_INDEX
    index = patch_index(64, 64, 32, 16, Split(0.25, seed=0))
    spec = ModelSpec(n_classes=2, init="scratch", decoder_channels=32)
    seed_everything(seed)
    model = build(spec)
    settings = TrainSettings(epochs=2, batch_size=3, lr=1e-3, seed=seed)
    return fit(model, spec, TrainingData(image, ids, index, 32, [1.0, 1.0]), settings, torch.device("cpu"))


def test_fit_returns_history_and_best_state_deterministically():
    history, state, best = _tiny_run()
    assert list(history.columns) == HISTORY_COLUMNS
    assert history.epoch.tolist() == [1, 2]
    assert history[["train_loss", "val_loss"]].gt(0).all().all()
    assert history[["train_acc", "val_acc", "train_miou", "val_miou"]].apply(lambda s: s.between(0, 1)).all().all()
    assert best == int(history.epoch[history.val_miou.idxmax()])
    again, _, _ = _tiny_run()
    pd.testing.assert_frame_equal(history.drop(columns="seconds"), again.drop(columns="seconds"))
    assert set(state) and all(v.device.type == "cpu" for v in state.values())


def _tiny_setup(tmp_path=None):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ids = (image[:, :, 0] > 127).astype(np.uint8)
    index = patch_index(64, 64, 32, 16, Split(0.25, seed=0))
    spec = ModelSpec(n_classes=2, init="scratch", decoder_channels=32)
    return image, ids, index, spec


def _fit(epochs, resume_path=None, augment=True):
    image, ids, index, spec = _tiny_setup()
    seed_everything(0)
    model = build(spec)
    settings = TrainSettings(epochs=epochs, batch_size=3, lr=1e-3, seed=0, augment=augment, optimizer="adamw", weight_decay=0.01)
    return fit(model, spec, TrainingData(image, ids, index, 32, [1.0, 2.0]), settings, torch.device("cpu"),
               resume=_resume(resume_path, "same"))


def _killed_in_epoch(monkeypatch, epoch, run):
    """Run ``run`` and kill it at the end of the training steps of ``epoch`` (as Ctrl-C would)."""
    real_figures = train._train_figures
    epochs = []

    def killed(*args, **kwargs):
        epochs.append(None)
        if len(epochs) == epoch:
            raise KeyboardInterrupt
        return real_figures(*args, **kwargs)

    monkeypatch.setattr(train, "_train_figures", killed)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(train, "_train_figures", real_figures)


def test_a_killed_run_resumes_after_its_last_epoch_and_ends_the_same(tmp_path, monkeypatch, caplog):
    uninterrupted, best_state, best_epoch = _fit(3)
    state = tmp_path / "state.pt"
    _killed_in_epoch(monkeypatch, 2, lambda: _fit(3, resume_path=state))
    assert state.is_file()
    with caplog.at_level("INFO"):
        resumed, resumed_best, resumed_epoch = _fit(3, resume_path=state)
    assert "1 epoch(s) done, continuing at epoch 2" in caplog.text
    pd.testing.assert_frame_equal(uninterrupted.drop(columns="seconds"), resumed.drop(columns="seconds"))
    assert resumed_epoch == best_epoch
    assert all(torch.equal(best_state[k], resumed_best[k]) for k in best_state)


def test_a_state_of_another_configuration_is_not_resumed(tmp_path, caplog):
    image, ids, index, spec = _tiny_setup()
    state = tmp_path / "state.pt"
    _fit(1, resume_path=state)
    seed_everything(0)
    settings = TrainSettings(epochs=1, batch_size=3, lr=1e-3, seed=0)
    with caplog.at_level("INFO"):
        history, _, _ = fit(build(spec), spec, TrainingData(image, ids, index, 32, [1.0, 2.0]), settings, torch.device("cpu"),
               resume=_resume(state, "other"))
    assert "starting from epoch 1" in caplog.text and history.epoch.tolist() == [1]


def test_a_state_whose_best_model_does_not_fit_is_discarded_not_kept(tmp_path, caplog):
    """A resume state that reads and matches, but whose best model is not this run's, would
    fail later, when the model is written, on every rerun: it is discarded up front."""
    state = tmp_path / "state.pt"
    _fit(1, resume_path=state)
    saved = torch.load(state, weights_only=True)
    saved["best_state"] = {"junk": torch.zeros(1)}
    torch.save(saved, state)
    with caplog.at_level("INFO"):
        history, best_state, _ = _fit(1, resume_path=state)
    assert "its best model does not fit this run's model" in caplog.text and "starting from epoch 1" in caplog.text
    assert history.epoch.tolist() == [1] and "junk" not in best_state


def test_augment_applies_the_same_symmetry_to_image_and_label():
    x = torch.arange(2 * 3 * 8 * 8).view(2, 3, 8, 8)
    y = x[:, 0].clone()
    ax, ay = train.augment(x, y, train.draw_symmetries(2, torch.Generator().manual_seed(3)))
    assert torch.equal(ax[:, 0], ay)
    for i in range(2):  # each result is one of the 8 symmetries of the original
        options = [x[i]]
        for op in (lambda t: t.transpose(-1, -2), lambda t: t.flip(-1), lambda t: t.flip(-2)):
            options += [op(o) for o in options]
        assert any(torch.equal(ax[i], o) for o in options)


def _fit_as_before(image, ids, index, spec, settings, size, class_weights):
    """The training loop as it was before its steps became capturable: eager, one batch of
    each size that the data gives, the figures read after every batch. Kept as the reference
    that the new loop must match on the CPU."""
    seed_everything(settings.seed)
    model = build(spec)
    image_t, labels_t = train.to_tensors(image, ids, torch.device("cpu"))
    corners = {s: torch.tensor(index.loc[index.split == s, ["row", "col"]].to_numpy()) for s in ("train", "val")}
    weight = torch.tensor(class_weights)
    n_classes = spec.n_classes
    optimizer = train.make_optimizer(model, settings)
    generator = torch.Generator().manual_seed(settings.seed)

    def loss_terms(logits, y):
        y = y.long()
        total = torch.nn.functional.cross_entropy(logits, y, weight=weight, ignore_index=IGNORE_INDEX, reduction="sum")
        return total, weight[y[y != IGNORE_INDEX]].sum()

    def confusion(logits, y):
        keep = y != IGNORE_INDEX
        cells = y[keep].long() * n_classes + logits.argmax(1)[keep]
        return torch.bincount(cells, minlength=n_classes ** 2).view(n_classes, n_classes).numpy()

    def scores(cm):
        return float(np.trace(cm) / cm.sum()), train.mean_iou(cm)

    rows = []
    for epoch in range(1, settings.epochs + 1):
        model.train()
        n, b = len(corners["train"]), settings.batch_size
        order = torch.randperm(n, generator=generator)
        losses, cm = [], 0
        for batch in [order[i * b : (i + 1) * b] for i in range(n // b)] or [order]:
            x, y = gather(image_t, labels_t, corners["train"][batch], size)
            if settings.augment:
                x, y = train.augment(x, y, torch.rand(3, len(x), generator=generator) < 0.5)
            logits = model(normalize(x, spec))
            total, count = loss_terms(logits, y)
            loss = total / count.clamp_min(1e-12)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            cm = cm + confusion(logits.detach(), y)
        train_acc, train_miou = scores(cm)
        model.eval()
        val_loss = val_weight = 0.0
        cm = 0
        with torch.no_grad():
            for i in range(0, len(corners["val"]), b):
                x, y = gather(image_t, labels_t, corners["val"][i : i + b], size)
                logits = model(normalize(x, spec))
                total, count = loss_terms(logits, y)
                val_loss, val_weight = val_loss + float(total), val_weight + float(count)
                cm = cm + confusion(logits, y)
        val_acc, val_miou = scores(cm)
        rows.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "train_acc": train_acc, "train_miou": train_miou,
                     "val_loss": val_loss / val_weight, "val_acc": val_acc, "val_miou": val_miou})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("augment", [False, True])
def test_the_capturable_steps_train_exactly_as_the_eager_loop_they_replace(augment):
    """Same draws, same batches, same updates, bit for bit on the CPU; only the validation
    loss may differ in its last digits (its last batch is padded with ignored patches)."""
    image, ids, index, spec = _tiny_setup()
    ids[:6, :9] = IGNORE_INDEX
    index = patch_index(64, 64, 16, 8, Split(0.2, seed=0))  # 49 patches: 39 train, 10 val
    settings = TrainSettings(epochs=3, batch_size=4, lr=1e-3, seed=1, augment=augment)
    expected = _fit_as_before(image, ids, index, spec, settings, 16, [1.0, 3.0])
    seed_everything(settings.seed)
    history, _, _ = fit(build(spec), spec, TrainingData(image, ids, index, 16, [1.0, 3.0]), settings, torch.device("cpu"))
    history = history.drop(columns=["seconds", "steps", "pixels", "partial"])
    pd.testing.assert_frame_equal(history.drop(columns="val_loss"), expected.drop(columns="val_loss"), check_exact=True)
    np.testing.assert_allclose(history.val_loss, expected.val_loss, rtol=1e-6)


def test_an_epoch_takes_the_full_batches_and_every_validation_patch(monkeypatch):
    image, ids, index, spec = _tiny_setup()
    index = patch_index(64, 64, 16, 8, Split(0.2, seed=0))  # 39 train, 10 val patches
    seen = {"train": [], "val": []}
    real_train, real_val = train._train_step, train._val_step

    def spy(kind, real):
        def step(batches, *args, **kwargs):
            seen[kind].append(batches.batch)
            real(batches, *args, **kwargs)
        return step

    monkeypatch.setattr(train, "_train_step", spy("train", real_train))
    monkeypatch.setattr(train, "_val_step", spy("val", real_val))
    settings = TrainSettings(epochs=1, batch_size=4, lr=1e-3, seed=0)
    fit(build(spec), spec, TrainingData(image, ids, index, 16, [1.0, 1.0]), settings, torch.device("cpu"))
    assert seen == {"train": [4] * 9, "val": [4] * 3}  # 39 // 4 full batches; 10 val patches padded to 12
    seen = {"train": [], "val": []}
    few = index[index.split == "val"].assign(split=["train"] * 3 + ["val"] * 7)  # 3 training patches
    fit(build(spec), spec, TrainingData(image, ids, few, 16, [1.0, 1.0]), settings, torch.device("cpu"))
    assert seen["train"] == [3]  # fewer patches than a batch: one smaller batch


def _steps_on(spec, image, ids, corners, batch, kind, device=torch.device("cpu")):
    model = build(spec).to(device)
    batches = train._Batches(len(corners) // batch, batch, spec.n_classes, device, 1 if kind == "train" else 2)
    image_t, labels_t = train.to_tensors(image, ids, device)
    how = compute_for_training(device)
    inputs = train.StepInputs(model, train.input_transform(spec, device, how), image_t, labels_t, 16,
                              torch.ones(spec.n_classes, device=device), how)
    if kind == "train":
        optimizer = train.make_optimizer(model, TrainSettings(epochs=1, batch_size=batch, lr=1e-3, seed=0), device)
        step = partial(train._augmented_train_step, batches, inputs, optimizer)
    else:
        model.eval()
        step = partial(train._val_step, batches, inputs)
    return model, batches, step


@pytest.mark.parametrize("kind", ["train", "val"])
def test_a_step_finds_its_batch_on_the_device_and_writes_in_place(kind):
    """What replaying a captured CUDA graph needs: the same call with no arguments does the
    next batch each time, and every result lands in tensors that keep their storage."""
    image, ids, _, spec = _tiny_setup()
    corners = torch.tensor([[0, 0], [8, 8], [16, 40], [48, 48], [30, 2], [12, 33]])
    model, batches, step = _steps_on(spec, image, ids, corners, 2, kind)
    valid = torch.tensor([True] * 5 + [False])  # in validation the last patch is padding
    batches.start(corners, flags=train.draw_symmetries(2, torch.Generator()).expand(3, 3, 2), valid=valid)
    tensors = [batches.corners, batches.flags, batches.valid, batches.step, batches.losses, batches.counts, *model.parameters()]
    storage = [t.data_ptr() for t in tensors]
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        step()
    assert batches.step.tolist() == [3]
    assert bool((batches.losses[:, 0] > 0).all())  # each call filled its own row
    ignored = 16 * 16 if kind == "val" else 0
    assert int(batches.counts[-1]) == ignored and int(batches.counts.sum()) == 6 * 16 * 16
    assert [t.data_ptr() for t in tensors] == storage
    changed = any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert changed == (kind == "train")


@pytest.mark.parametrize("lr, what", [
    (1e30, r"the training loss is nan and the validation loss nan"),
    (1e5, r"the training loss is [0-9.e+]+, more than 100 times the 0.693 of a uniform guess"),
])
def test_a_diverging_run_stops_with_the_epoch_and_what_to_try(lr, what):
    image, ids, index, spec = _tiny_setup()
    settings = TrainSettings(epochs=3, batch_size=3, lr=lr, seed=0)
    with pytest.raises(DivergenceError, match=rf"training diverged in epoch 1: {what}, so no model is written. "
                                              r"Try a smaller learning rate \(train.lr is " + re.escape(f"{lr:g}")):
        fit(build(spec), spec, TrainingData(image, ids, index, 32, [1.0, 1.0]), settings, torch.device("cpu"))


def test_a_sane_learning_rate_is_not_called_divergent():
    image, ids, index, spec = _tiny_setup()
    seed_everything(0)
    settings = TrainSettings(epochs=2, batch_size=3, lr=1.0, seed=0)  # 1000 x the study's, still finite and small
    history, _, _ = fit(build(spec), spec, TrainingData(image, ids, index, 32, [1.0, 1.0]), settings, torch.device("cpu"))
    assert history.train_loss.between(0, 100 * np.log(2)).all()


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
@pytest.mark.parametrize("kind", ["train", "val"])
def test_on_cuda_a_step_never_waits_for_the_host(kind):
    image, ids, _, spec = _tiny_setup()
    cuda = torch.device("cuda")
    corners = torch.tensor([[0, 0], [8, 8], [16, 40], [48, 48], [30, 2], [12, 33]], device=cuda)
    model, batches, step = _steps_on(spec, image, ids, corners, 2, kind, device=cuda)
    batches.start(corners, flags=torch.zeros(3, 3, 2, dtype=torch.bool, device=cuda))
    step()  # the first call may set up library handles and the optimiser state
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
        step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert batches.step.item() == 3


@needs_cuda
def test_on_cuda_captured_steps_train_like_eager_ones(caplog):
    image, ids, _, spec = _tiny_setup()
    index = patch_index(64, 64, 16, 8, Split(0.2, seed=0))
    histories = {}
    for capture in (False, True):
        seed_everything(0)
        settings = TrainSettings(epochs=3, batch_size=4, lr=1e-3, seed=0, augment=True, capture=capture)
        with caplog.at_level("INFO"):
            histories[capture], _, _ = fit(build(spec), spec, TrainingData(image, ids, index, 16, [1.0, 2.0]), settings,
                                           torch.device("cuda"))
    assert "training step: captured as a CUDA graph" in caplog.text
    assert "validation step: captured as a CUDA graph" in caplog.text
    assert "capturing a CUDA graph failed" not in caplog.text
    pd.testing.assert_frame_equal(histories[True].drop(columns="seconds"), histories[False].drop(columns="seconds"),
                                  check_exact=False, rtol=2e-2, atol=2e-3)


def test_adam_keeps_its_state_on_the_device_only_when_its_steps_are_captured():
    model = torch.nn.Linear(2, 2)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    for device, capture, capturable in ((cuda, True, True), (cuda, False, False), (cpu, True, False)):
        settings = TrainSettings(epochs=1, batch_size=2, lr=1e-3, seed=0, capture=capture)
        optimizer = train.make_optimizer(model, settings, device)
        assert optimizer.defaults["capturable"] is capturable, (device, capture)


@pytest.mark.parametrize("resume_seconds, written", [(0, True), (3600, False)])
def test_the_resume_state_is_written_at_most_once_per_resume_seconds(tmp_path, resume_seconds, written):
    image, ids, index, spec = _tiny_setup()
    seed_everything(0)
    settings = TrainSettings(epochs=2, batch_size=3, lr=1e-3, seed=0, resume_seconds=resume_seconds)
    fit(build(spec), spec, TrainingData(image, ids, index, 32, [1.0, 2.0]), settings, torch.device("cpu"),
        resume=_resume(tmp_path / "state.pt", "f"))
    assert (tmp_path / "state.pt").is_file() is written


def test_the_log_says_how_the_training_and_validation_steps_ran(caplog):
    with caplog.at_level("INFO"):
        _fit(1)
    assert "training step: eager, because the device is the CPU" in caplog.text
    assert "validation step: eager, because the device is the CPU" in caplog.text


def test_a_state_whose_epochs_are_all_done_says_so(tmp_path, caplog):
    _fit(1, resume_path=tmp_path / "state.pt")
    with caplog.at_level("INFO"):
        history, _, _ = _fit(1, resume_path=tmp_path / "state.pt")
    assert "1 epoch(s) done, all of them: writing the outputs" in caplog.text
    assert "continuing at epoch 2" not in caplog.text and history.epoch.tolist() == [1]


def _budget_fit(budget_steps, resume_path=None, epochs=2):
    image, ids, index, spec = _tiny_setup()
    index = patch_index(64, 64, 16, 8, Split(0.2, seed=0))  # 39 training patches: 13 steps an epoch in batches of 3
    seed_everything(0)
    settings = TrainSettings(epochs=epochs, batch_size=3, lr=1e-3, seed=0, augment=True, budget_steps=budget_steps)
    return fit(build(spec), spec, TrainingData(image, ids, index, 16, [1.0, 2.0]), settings, torch.device("cpu"),
               resume=_resume(resume_path, "budget"))


@functools.cache
def _budget_fit_30():
    """The uninterrupted 30-step run, trained once for the tests that compare with it (read only)."""
    return _budget_fit(30)


def test_a_step_budget_that_ends_inside_an_epoch_ends_with_a_partial_one():
    history, _, _ = _budget_fit_30()  # 13 + 13 + 4 steps
    assert history.steps.tolist() == [13, 26, 30] and history.partial.tolist() == [False, False, True]
    assert history.pixels.tolist() == [s * 3 * 16 * 16 for s in (13, 26, 30)]
    default, _, _ = _budget_fit(None)  # no budget: train.epochs epochs
    assert default.steps.tolist() == [13, 26] and not default.partial.any()
    pd.testing.assert_frame_equal(default.drop(columns="seconds"), history.drop(columns="seconds").iloc[:2])


def test_a_run_killed_inside_a_step_budget_resumes_to_the_same_history(tmp_path, monkeypatch):
    uninterrupted, _, _ = _budget_fit_30()
    _killed_in_epoch(monkeypatch, 3, lambda: _budget_fit(30, resume_path=tmp_path / "state.pt"))
    resumed, _, _ = _budget_fit(30, resume_path=tmp_path / "state.pt")
    pd.testing.assert_frame_equal(uninterrupted.drop(columns="seconds"), resumed.drop(columns="seconds"))
