import numpy as np
import pytest
import torch

from aerialseg.mosaic import predict_ids, predict_logits
from aerialseg.patches import grid


def _pointwise(batch: torch.Tensor) -> torch.Tensor:
    """A stand-in model whose logits depend only on each pixel: channel k = pixel value of band k."""
    return batch.float()


@pytest.mark.parametrize("height, width, size, stride", [(64, 64, 32, 16), (70, 53, 32, 16), (70, 53, 16, 7), (48, 48, 48, 5)])
def test_pointwise_logits_come_back_exactly(height, width, size, stride):
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    logits = predict_logits(_pointwise, image, 3, size, stride, batch_size=5)
    np.testing.assert_array_equal(logits.numpy(), image.transpose(2, 0, 1).astype(np.float32))
    np.testing.assert_array_equal(predict_ids(_pointwise, image, 3, size, stride), image.argmax(2))


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
