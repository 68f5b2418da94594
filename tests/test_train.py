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
