import numpy as np
import pandas as pd
import pytest

from aerialseg.patches import Split, grid, patch_index, split_random, window_starts


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
    a = patch_index(256, 256, 32, 16, Split(0.2, seed=3))
    b = patch_index(256, 256, 32, 16, Split(0.2, seed=3))
    c = patch_index(256, 256, 32, 16, Split(0.2, seed=4))
    assert list(a.columns) == ["row", "col", "split"]
    assert a.equals(b) and not a.split.equals(c.split)
    assert (a.split == "val").sum() == round(0.2 * len(a))


def test_split_needs_a_patch_on_each_side():
    with pytest.raises(ValueError, match="1 patches cannot be split"):
        split_random(grid(32, 32, 32, 32), 0.2, seed=0)


def test_blocks_split_shares_no_pixel_between_train_and_val():
    height, width, size = 300, 260, 32
    index = patch_index(height, width, size, 16, Split(0.2, seed=1, kind="blocks", block_size=64))
    assert set(index.split) == {"train", "val"}
    val = np.zeros((height, width), bool)
    for r, c in index.loc[index.split == "val", ["row", "col"]].to_numpy():
        val[r : r + size, c : c + size] = True
    for r, c in index.loc[index.split == "train", ["row", "col"]].to_numpy():
        assert not val[r : r + size, c : c + size].any()
    assert (index.split == "val").sum() >= 0.2 * len(grid(height, width, size, 16)) - 1
    again = patch_index(height, width, size, 16, Split(0.2, seed=1, kind="blocks", block_size=64))
    assert index.equals(again)


def test_random_split_leaks_overlapping_patches():
    """Why the blocks split exists: with overlapping patches a random split shares pixels."""
    index = patch_index(128, 128, 32, 16, Split(0.2, seed=0))
    val = np.zeros((128, 128), bool)
    for r, c in index.loc[index.split == "val", ["row", "col"]].to_numpy():
        val[r : r + 32, c : c + 32] = True
    shared = [val[r : r + 32, c : c + 32].any() for r, c in index.loc[index.split == "train", ["row", "col"]].to_numpy()]
    assert np.mean(shared) > 0.5


def test_blocks_split_needs_two_blocks():
    with pytest.raises(ValueError, match="holds only one 128 px block"):
        patch_index(100, 100, 32, 16, Split(0.2, seed=0, kind="blocks"))


def test_an_epoch_has_full_batches_or_one_small_one():
    from aerialseg.budget import steps_per_epoch

    assert [steps_per_epoch(n, 8) for n in (51, 64, 7, 2)] == [6, 8, 1, 1]


def _split_blocks_of_one_image(index, height, width, size, val_fraction, seed, block_size):
    """The blocks split as it was for one image, before tiles: the reference that the tiled
    split must reproduce for a single tile."""
    block = (index.row.to_numpy() // block_size) * (width // block_size + 1) + index.col.to_numpy() // block_size
    rng = np.random.default_rng(seed)
    val = np.zeros(len(index), dtype=bool)
    for b in rng.permutation(np.unique(block))[:-1]:
        if val.mean() >= val_fraction:
            break
        val |= block == b
    mask = np.zeros((height, width), dtype=bool)
    for r, c in index.loc[val, ["row", "col"]].to_numpy():
        mask[r : r + size, c : c + size] = True
    covered = np.zeros((height + 1, width + 1), dtype=np.int64)
    covered[1:, 1:] = mask.cumsum(0).cumsum(1)
    r, c = index.row.to_numpy(), index.col.to_numpy()
    overlap = covered[r + size, c + size] - covered[r, c + size] - covered[r + size, c] + covered[r, c] > 0
    keep = val | ~overlap
    return index.assign(split=np.where(val, "val", "train").astype(object))[keep].reset_index(drop=True)


@pytest.mark.parametrize("split", ["random", "blocks"])
def test_one_tile_gives_the_one_image_index_patch_for_patch(split):
    from aerialseg.patches import patch_index_of_tiles

    index = grid(160, 192, 32, 16)
    expected = (split_random(index, 0.2, 5) if split == "random"
                else _split_blocks_of_one_image(index, 160, 192, 32, 0.2, 5, 64))
    tiles = patch_index_of_tiles({"a": (160, 192)}, 32, 16, Split(0.2, seed=5, kind=split, block_size=64))
    pd.testing.assert_frame_equal(tiles.drop(columns="tile"), expected)
    pd.testing.assert_frame_equal(patch_index(160, 192, 32, 16, Split(0.2, seed=5, kind=split, block_size=64)), expected)
    assert (tiles.tile == "a").all()


def test_the_split_of_several_tiles_draws_from_all_of_them():
    from aerialseg.patches import patch_index_of_tiles

    shapes = {"north": (128, 128), "south": (96, 160)}
    index = patch_index_of_tiles(shapes, 32, 32, Split(0.25, seed=0))
    assert list(index.columns) == ["row", "col", "split", "tile"]
    assert index.groupby("tile").size().to_dict() == {"north": 16, "south": 15}
    assert set(index[index.split == "val"].tile) == {"north", "south"}  # a random split over all patches
    assert (index.row + 32 <= index.tile.map({t: h for t, (h, _) in shapes.items()})).all()
    blocks = patch_index_of_tiles(shapes, 32, 16, Split(0.25, seed=0, kind="blocks", block_size=64))
    for tile, (height, width) in shapes.items():  # no training patch touches a validation patch of its tile
        mine = blocks[blocks.tile == tile]
        val = np.zeros((height, width), bool)
        for r, c in mine[mine.split == "val"][["row", "col"]].to_numpy():
            val[r : r + 32, c : c + 32] = True
        assert not any(val[r : r + 32, c : c + 32].any() for r, c in mine[mine.split == "train"][["row", "col"]].to_numpy())


def test_the_tiles_split_gives_whole_tiles_to_validation():
    from aerialseg.patches import patch_index_of_tiles

    shapes = {name: (64, 64) for name in ("a", "b", "c", "d", "e")}
    index = patch_index_of_tiles(shapes, 32, 32, Split(0.2, seed=1, kind="tiles"))
    per_tile = index.groupby("tile").split.agg(set)
    assert all(len(splits) == 1 for splits in per_tile)  # a tile is wholly train or wholly val
    assert (per_tile == {"val"}).sum() == 1 and (per_tile == {"train"}).sum() == 4
    with pytest.raises(ValueError, match="needs at least two training tiles"):
        patch_index_of_tiles({"a": (64, 64)}, 32, 32, Split(0.2, seed=1, kind="tiles"))


@pytest.mark.parametrize("budget, size, n_train, expected", [
    ("epochs", 64, 75, 10 * 9),           # its own epochs: 75 patches in batches of 8 make 9 steps
    ("steps", 64, 75, 10 * 38),           # the 32 px reference: 308 patches, 38 steps an epoch
    ("steps", 128, 17, 10 * 38),
    ("pixels", 64, 75, 10 * 38 // 4 + (10 * 38 % 4 > 0)),  # a 64 px step sees 4 times the pixels of a 32 px one
    ("pixels", 128, 17, -(-10 * 38 * 8 * 32**2 // (8 * 128**2))),
    ("pixels", 128, 5, -(-10 * 38 * 8 * 32**2 // (5 * 128**2))),  # fewer patches than a batch: one smaller batch
])
def test_a_training_budget_in_steps_for_every_patch_size(budget, size, n_train, expected):
    from aerialseg import budget as budgets

    plan = budgets.of({"budget": budget, "epochs": 10, "batch_size": 8})
    assert plan.steps(size, n_train, budgets.Reference(size=32, n_train=308)) == expected


def test_a_budget_at_the_study_s_stride_gives_every_size_about_as_many_steps():
    """Stride 16 on the Dubai pair: 308 / 297 / 275 steps an epoch at 32 / 64 / 128 px (the issue's
    figures): an epoch budget is already nearly a step budget, and a pixel budget gives the 128 px
    case a sixteenth of the 32 px case's steps."""
    from aerialseg.budget import Epochs, Pixels, Reference

    reference = Reference(size=32, n_train=308 * 32)
    assert [Epochs(20, 32).steps(s, n * 32, reference) for s, n in ((32, 308), (64, 297), (128, 275))] == [
        6160, 5940, 5500]
    assert [Pixels(20, 32).steps(s, n * 32, reference) for s, n in ((32, 308), (64, 297), (128, 275))] == [
        6160, 1540, 385]


def test_an_unknown_budget_is_refused_naming_the_key():
    from aerialseg import budget

    with pytest.raises(ValueError, match="unknown train.budget 'hours': expected one of epochs, steps, pixels"):
        budget.of({"budget": "hours", "epochs": 1, "batch_size": 1})
    assert budget.reference_size({"budget": "epochs"}, [64, 32]) is None
    assert budget.reference_size({"budget": "pixels"}, [64, 32]) == 32
