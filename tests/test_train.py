import numpy as np
import pandas as pd
import pytest
import torch

from aerialseg.config import IGNORE_INDEX
from aerialseg.model import ModelSpec, build
from aerialseg.patches import patch_index
from aerialseg.train import HISTORY_COLUMNS, TrainSettings, _batches, fit, gather, seed_everything, weighted_loss


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


def test_training_batches_drop_the_partial_batch():
    batches = _batches(10, 4, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [4, 4]
    assert [len(b) for b in _batches(3, 4, torch.Generator().manual_seed(0))] == [3]
    assert torch.cat(_batches(10, 4, None)).tolist() == list(range(10))


def _tiny_run(seed=0):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ids = (image[:, :, 0] > 127).astype(np.uint8)
    ids[:4, :4] = IGNORE_INDEX
    index = patch_index(64, 64, 32, 16, 0.25, seed=0)
    spec = ModelSpec(n_classes=2, init="scratch", decoder_channels=32)
    seed_everything(seed)
    model = build(spec)
    settings = TrainSettings(epochs=2, batch_size=3, lr=1e-3, seed=seed)
    return fit(model, spec, image, ids, index, 32, [1.0, 1.0], settings, torch.device("cpu"), progress=False)


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
    index = patch_index(64, 64, 32, 16, 0.25, seed=0)
    spec = ModelSpec(n_classes=2, init="scratch", decoder_channels=32)
    return image, ids, index, spec


def _fit(epochs, resume_path=None, augment=True):
    image, ids, index, spec = _tiny_setup()
    seed_everything(0)
    model = build(spec)
    settings = TrainSettings(epochs=epochs, batch_size=3, lr=1e-3, seed=0, augment=augment, optimizer="adamw", weight_decay=0.01)
    return fit(model, spec, image, ids, index, 32, [1.0, 2.0], settings, torch.device("cpu"),
               progress=False, resume_path=resume_path, fingerprint="same")


def test_a_killed_run_resumes_after_its_last_epoch_and_ends_the_same(tmp_path, monkeypatch, caplog):
    from aerialseg import train

    uninterrupted, best_state, best_epoch = _fit(3)
    state = tmp_path / "state.pt"
    real_epoch = train._train_epoch

    def killed_in_epoch_2(*args, **kwargs):
        if args[10] == 2:  # the epoch argument
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train, "_train_epoch", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        _fit(3, resume_path=state)
    monkeypatch.setattr(train, "_train_epoch", real_epoch)
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
        history, _, _ = fit(build(spec), spec, image, ids, index, 32, [1.0, 2.0], settings, torch.device("cpu"),
                            progress=False, resume_path=state, fingerprint="other")
    assert "starting from epoch 1" in caplog.text and history.epoch.tolist() == [1]


def test_augment_applies_the_same_symmetry_to_image_and_label():
    from aerialseg.train import augment

    x = torch.arange(2 * 3 * 8 * 8).view(2, 3, 8, 8)
    y = x[:, 0].clone()
    ax, ay = augment(x, y, torch.Generator().manual_seed(3))
    assert torch.equal(ax[:, 0], ay)
    for i in range(2):  # each result is one of the 8 symmetries of the original
        options = [x[i]]
        for op in (lambda t: t.transpose(-1, -2), lambda t: t.flip(-1), lambda t: t.flip(-2)):
            options += [op(o) for o in options]
        assert any(torch.equal(ax[i], o) for o in options)


def test_other_smp_architectures_take_a_decoder_list():
    net = build(ModelSpec(3, "scratch", architecture="Unet", encoder_depth=4, decoder_channels=[256, 128, 64, 32]))
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="cannot build Unet"):
        build(ModelSpec(3, "scratch", architecture="Unet", encoder_depth=4, decoder_channels=[256, 128]))
