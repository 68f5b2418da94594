import numpy as np
import pytest
import torch

from aerialseg.mosaic import iter_strips, predict_ids, predict_logits, window_weights, with_flips
from aerialseg.patches import grid


def _pointwise(batch: torch.Tensor) -> torch.Tensor:
    """A stand-in model whose logits depend only on each pixel: channel k = pixel value of band k."""
    return batch.float()


@pytest.mark.parametrize("blend", ["mean", "gaussian"])
@pytest.mark.parametrize("height, width, size, stride", [(64, 64, 32, 16), (70, 53, 32, 16), (70, 53, 16, 7), (48, 48, 48, 5)])
def test_pointwise_logits_come_back_exactly(height, width, size, stride, blend):
    """A stride that divides the image and ones that do not (70 - 32 = 38 is no multiple of 16)."""
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    logits = predict_logits(_pointwise, image, 3, size, stride, batch_size=5, blend=blend)
    expected = image.transpose(2, 0, 1).astype(np.float32)
    if blend == "mean":
        np.testing.assert_array_equal(logits.numpy(), expected)
    else:  # a weighted mean of equal values: exact up to float rounding
        np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-5)
    ties = (np.sort(image, axis=2)[:, :, -1] == np.sort(image, axis=2)[:, :, -2])
    ids = predict_ids(_pointwise, image, 3, size, stride, blend=blend)
    np.testing.assert_array_equal(ids[~ties], image.argmax(2)[~ties])


def test_gaussian_weights_favour_the_window_centre():
    weights = window_weights(32, "gaussian")
    assert weights.shape == (32, 32) and torch.allclose(weights, weights.T) and torch.allclose(weights, weights.flip(0))
    assert weights[15, 15] > weights[0, 15] > weights[0, 0] > 0
    assert torch.equal(window_weights(8, "mean"), torch.ones(8, 8))


def test_flip_tta_undoes_each_flip():
    image = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    tta = predict_logits(with_flips(_pointwise), image, 3, 16, 8)
    np.testing.assert_array_equal(tta.numpy(), image.transpose(2, 0, 1).astype(np.float32))


def test_strips_are_bounded_by_the_patch_size():
    image = np.zeros((200, 40, 3), np.uint8)
    blocks = list(iter_strips(_pointwise, image, 3, 32, 16))
    assert sum(block.shape[1] for _, block in blocks) == 200
    assert [top for top, _ in blocks] == sorted(top for top, _ in blocks)
    assert max(block.shape[1] for _, block in blocks) <= 32


def test_overlaps_are_the_plain_average_of_the_windows():
    height, width, size, stride = 50, 41, 16, 6  # the stride divides neither side
    calls = []

    def window_number(batch):
        first = sum(calls)
        calls.append(len(batch))
        values = torch.arange(first, first + len(batch), dtype=torch.float32)
        return values.view(-1, 1, 1, 1).expand(-1, 1, size, size)

    image = np.zeros((height, width, 3), np.uint8)
    logits = predict_logits(window_number, image, 1, size, stride, batch_size=4)[0].numpy()
    total = np.zeros((height, width))
    count = np.zeros((height, width))
    for number, (r, c) in enumerate(grid(height, width, size, stride)[["row", "col"]].to_numpy()):
        total[r : r + size, c : c + size] += number
        count[r : r + size, c : c + size] += 1
    assert count.min() >= 1  # the borders are covered too
    np.testing.assert_allclose(logits, total / count, rtol=1e-6)


def test_image_smaller_than_patch_is_refused():
    with pytest.raises(ValueError, match="image of 20 x 30 px is smaller than the 32 px patch"):
        predict_logits(_pointwise, np.zeros((30, 20, 3), np.uint8), 3, 32, 16)
