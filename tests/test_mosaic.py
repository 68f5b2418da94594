import numpy as np
import pytest
import torch

from aerialseg.mosaic import Tiling, iter_strips, predict_ids, predict_logits, window_weights, with_flips
from aerialseg.patches import grid, window_starts


def _pointwise(batch: torch.Tensor) -> torch.Tensor:
    """A stand-in model whose logits depend only on each pixel: channel k = pixel value of band k."""
    return batch.float()


@pytest.mark.parametrize("blend", ["mean", "gaussian"])
@pytest.mark.parametrize("height, width, size, stride", [(64, 64, 32, 16), (70, 53, 32, 16), (70, 53, 16, 7), (48, 48, 48, 5)])
def test_pointwise_logits_come_back_exactly(height, width, size, stride, blend):
    """A stride that divides the image and ones that do not (70 - 32 = 38 is no multiple of 16)."""
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    logits = predict_logits(_pointwise, image, 3, Tiling(size, stride, batch_size=5, blend=blend))
    expected = image.transpose(2, 0, 1).astype(np.float32)
    if blend == "mean":
        np.testing.assert_array_equal(logits.numpy(), expected)
    else:  # a weighted mean of equal values: exact up to float rounding
        np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-5)
    ties = (np.sort(image, axis=2)[:, :, -1] == np.sort(image, axis=2)[:, :, -2])
    ids = predict_ids(_pointwise, image, 3, Tiling(size, stride, blend=blend))
    np.testing.assert_array_equal(ids[~ties], image.argmax(2)[~ties])


def test_gaussian_weights_favour_the_window_centre():
    weights = window_weights(32, "gaussian")
    assert weights.shape == (32, 32) and torch.allclose(weights, weights.T) and torch.allclose(weights, weights.flip(0))
    assert weights[15, 15] > weights[0, 15] > weights[0, 0] > 0
    assert torch.equal(window_weights(8, "mean"), torch.ones(8, 8))


def test_flip_tta_undoes_each_flip():
    image = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    tta = predict_logits(with_flips(_pointwise), image, 3, Tiling(16, 8))
    np.testing.assert_array_equal(tta.numpy(), image.transpose(2, 0, 1).astype(np.float32))


@pytest.mark.parametrize("batch_size, rows_per_band", [(2, 1), (5, 2), (6, 3)])
def test_finished_rows_come_in_bands_of_the_window_rows_of_one_batch(batch_size, rows_per_band):
    image = np.zeros((200, 40, 3), np.uint8)  # 32 px windows at rows 0, 16, ..., 160, 168; 2 per row
    blocks = [(top, block) for top, block, _ in iter_strips(_pointwise, image, 3, Tiling(32, 16, batch_size=batch_size))]
    assert sum(block.shape[1] for _, block in blocks) == 200
    assert [top for top, _ in blocks] == sorted(top for top, _ in blocks)
    *inner, last = [block.shape[1] for _, block in blocks]
    assert max(inner) == 16 * rows_per_band  # rows that no later window touches
    assert last <= 16 * (rows_per_band - 1) + 32


def _one_by_one(predictor, image, n_classes, size, stride, batch_size, blend):
    """The mosaic as the workflow built it before it moved to the device: window rows in
    order, each window's weighted logits added on the host one window at a time."""
    height, width = image.shape[:2]
    rows, cols = window_starts(height, size, stride), window_starts(width, size, stride)
    weights = window_weights(size, blend)
    total = torch.zeros((n_classes, height, width))
    count = torch.zeros((height, width))
    for top in rows:
        for start in range(0, len(cols), batch_size):
            batch_cols = cols[start : start + batch_size]
            windows = np.stack([image[top : top + size, c : c + size] for c in batch_cols])
            logits = predictor(torch.from_numpy(windows).permute(0, 3, 1, 2)).float() * weights
            for c, window_logits in zip(batch_cols, logits):
                total[:, top : top + size, c : c + size] += window_logits
                count[top : top + size, c : c + size] += weights
    return total / count


@pytest.mark.parametrize("blend", ["mean", "gaussian"])
@pytest.mark.parametrize("height, width, size, stride, batch_size",
                         [(96, 96, 32, 16, 4), (70, 53, 16, 7, 64), (100, 61, 32, 11, 9), (48, 48, 48, 5, 3)])
def test_the_device_mosaic_equals_adding_the_windows_one_by_one(height, width, size, stride, batch_size, blend):
    """Bit for bit, with a real convolution whose logits differ from window to window."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 5, padding=2)

    def predictor(batch):
        return conv(batch.float() / 255)

    image = np.random.default_rng(2).integers(0, 256, (height, width, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = _one_by_one(predictor, image, 4, size, stride, batch_size, blend)
        logits = predict_logits(predictor, image, 4, Tiling(size, stride, batch_size=batch_size, blend=blend))
    assert torch.equal(logits, expected)
    ids = predict_ids(predictor, image, 4, Tiling(size, stride, batch_size=batch_size, blend=blend))
    np.testing.assert_array_equal(ids, expected.argmax(0).numpy())


def test_overlaps_are_the_plain_average_of_the_windows():
    height, width, size, stride = 50, 41, 16, 6  # the stride divides neither side
    calls = []

    def window_number(batch):
        first = sum(calls)
        calls.append(len(batch))
        values = torch.arange(first, first + len(batch), dtype=torch.float32)
        return values.view(-1, 1, 1, 1).expand(-1, 1, size, size)

    image = np.zeros((height, width, 3), np.uint8)
    logits = predict_logits(window_number, image, 1, Tiling(size, stride, batch_size=4))[0].numpy()
    total = np.zeros((height, width))
    count = np.zeros((height, width))
    for number, (r, c) in enumerate(grid(height, width, size, stride)[["row", "col"]].to_numpy()):
        total[r : r + size, c : c + size] += number
        count[r : r + size, c : c + size] += 1
    assert count.min() >= 1  # the borders are covered too
    np.testing.assert_allclose(logits, total / count, rtol=1e-6)


def test_image_smaller_than_patch_is_refused():
    with pytest.raises(ValueError, match="image of 20 x 30 px is smaller than the 32 px patch"):
        predict_logits(_pointwise, np.zeros((30, 20, 3), np.uint8), 3, Tiling(32, 16))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("blend", ["mean", "gaussian"])
def test_on_cuda_the_mosaic_equals_the_cpu_one(blend):
    """Elementwise sums in a fixed order: the same floats on both devices."""
    image = np.random.default_rng(3).integers(0, 256, (150, 97, 3), dtype=np.uint8)
    expected = predict_logits(_pointwise, image, 3, Tiling(32, 12, batch_size=7, blend=blend))
    logits = predict_logits(_pointwise, image, 3, Tiling(32, 12, batch_size=7, blend=blend), device="cuda")
    assert torch.equal(logits, expected)
    ids = predict_ids(_pointwise, image, 3, Tiling(32, 12, batch_size=500, blend=blend), device="cuda")
    np.testing.assert_array_equal(ids, predict_ids(_pointwise, image, 3, Tiling(32, 12, batch_size=500, blend=blend)))


def test_a_read_only_image_is_predicted_without_numpy_s_undefined_behaviour_warning(recwarn):
    """Pillow gives read-only arrays; sharing one with a tensor warns once per job in every predict log."""
    image = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    image.setflags(write=False)
    ids = predict_ids(lambda batch: batch.float()[:, :2], image, 2, Tiling(16, 8))
    assert ids.shape == (40, 48) and not [w for w in recwarn if "not writable" in str(w.message)]


def test_sums_built_a_few_columns_at_a_time_are_the_sums_of_the_whole_band(monkeypatch):
    from aerialseg import mosaic

    image = np.random.default_rng(4).integers(0, 256, (70, 230, 3), dtype=np.uint8)
    whole = predict_logits(_pointwise, image, 3, Tiling(32, 12, batch_size=7, blend="gaussian"))
    monkeypatch.setattr(mosaic, "COLUMN_CHUNK", 50)  # 5 chunks, none on a window border
    chunked = predict_logits(_pointwise, image, 3, Tiling(32, 12, batch_size=7, blend="gaussian"))
    assert torch.equal(chunked, whole)


BF16_SHARE = 0.02
"""At most this share of a trained model's class ids may change when the CPU predicts in bf16
autocast instead of float32: only near-ties flip (measured on the demo scene below, and on the
Dubai pair in benchmarks/README.md)."""


def test_bf16_on_the_cpu_changes_few_class_ids_and_channels_last_none(tmp_path):
    from aerialseg import demo, device, train
    from aerialseg.io.labels import decode_colors
    from aerialseg.model import ModelSpec, build, input_transform
    from aerialseg.patches import Split, patch_index

    image, label = demo.render_scene(192, seed=0)
    ids = decode_colors(label, list(demo.ISPRS_COLORS.values())[:5], [demo.ISPRS_COLORS["Clutter"]])
    spec = ModelSpec(5, "scratch", decoder_channels=64)
    train.seed_everything(0)
    model = build(spec)
    settings = train.TrainSettings(epochs=3, batch_size=8, lr=3e-3, seed=0, augment=True)
    train.fit(model, spec, train.TrainingData(image, ids, patch_index(192, 192, 32, 16, Split(0.2, 0)), 32, [1.0] * 5),
              settings, torch.device("cpu"))
    model.eval()
    test, _ = demo.render_scene(160, seed=1)
    maps = {}
    for precision, memory_format in (("float32", "contiguous"), ("float32", "channels_last"), ("bf16", "channels_last")):
        how = device.compute(torch.device("cpu"), precision, memory_format)
        net, prepare = how.format(model), input_transform(spec, torch.device("cpu"), how)

        def predictor(batch):
            with how.autocast():
                return net(prepare(batch))

        maps[precision, memory_format] = predict_ids(predictor, test, 5, Tiling(32, 16))
    reference = maps["float32", "contiguous"]
    np.testing.assert_array_equal(maps["float32", "channels_last"], reference)  # another layout, the same ids
    share = (maps["bf16", "channels_last"] != reference).mean()
    assert share < BF16_SHARE, f"{share:.2%} of the class ids changed in bf16"
