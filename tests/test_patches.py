import numpy as np
import pytest

from aerialseg.patches import grid, patch_index, split_random, window_starts


@pytest.mark.parametrize("length, size, stride", [(100, 32, 16), (96, 32, 32), (33, 32, 5), (32, 32, 7)])
def test_windows_cover_every_pixel_and_stay_inside(length, size, stride):
    starts = window_starts(length, size, stride)
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + size] = True
    assert covered.all()
    assert starts[0] == 0 and starts[-1] == length - size
    assert (np.diff(starts) <= stride).all() and (np.diff(starts) > 0).all()


def test_window_larger_than_image_is_refused():
    with pytest.raises(ValueError, match="a 64 px window does not fit in 50 px"):
        window_starts(50, 64, 16)


def test_grid_is_row_major():
    index = grid(64, 96, 32, 32)
    assert list(zip(index.row, index.col)) == [(0, 0), (0, 32), (0, 64), (32, 0), (32, 32), (32, 64)]


def test_split_is_seeded_and_has_the_asked_fraction():
    a = patch_index(256, 256, 32, 16, 0.2, seed=3)
    b = patch_index(256, 256, 32, 16, 0.2, seed=3)
    c = patch_index(256, 256, 32, 16, 0.2, seed=4)
    assert list(a.columns) == ["row", "col", "split"]
    assert a.equals(b) and not a.split.equals(c.split)
    assert (a.split == "val").sum() == round(0.2 * len(a))


def test_split_needs_a_patch_on_each_side():
    with pytest.raises(ValueError, match="1 patches cannot be split"):
        split_random(grid(32, 32, 32, 32), 0.2, seed=0)


def test_blocks_split_shares_no_pixel_between_train_and_val():
    height, width, size = 300, 260, 32
    index = patch_index(height, width, size, 16, 0.2, seed=1, split="blocks", block_size=64)
    assert set(index.split) == {"train", "val"}
    val = np.zeros((height, width), bool)
    for r, c in index.loc[index.split == "val", ["row", "col"]].to_numpy():
        val[r : r + size, c : c + size] = True
    for r, c in index.loc[index.split == "train", ["row", "col"]].to_numpy():
        assert not val[r : r + size, c : c + size].any()
    assert (index.split == "val").sum() >= 0.2 * len(grid(height, width, size, 16)) - 1
    again = patch_index(height, width, size, 16, 0.2, seed=1, split="blocks", block_size=64)
    assert index.equals(again)


def test_random_split_leaks_overlapping_patches():
    """Why the blocks split exists: with overlapping patches a random split shares pixels."""
    index = patch_index(128, 128, 32, 16, 0.2, seed=0)
    val = np.zeros((128, 128), bool)
    for r, c in index.loc[index.split == "val", ["row", "col"]].to_numpy():
        val[r : r + 32, c : c + 32] = True
    shared = [val[r : r + 32, c : c + 32].any() for r, c in index.loc[index.split == "train", ["row", "col"]].to_numpy()]
    assert np.mean(shared) > 0.5


def test_blocks_split_needs_two_blocks():
    with pytest.raises(ValueError, match="holds only one 128 px block"):
        patch_index(100, 100, 32, 16, 0.2, seed=0, split="blocks")


def test_an_epoch_has_full_batches_or_one_small_one():
    from aerialseg.patches import steps_per_epoch

    assert [steps_per_epoch(n, 8) for n in (51, 64, 7, 2)] == [6, 8, 1, 1]
