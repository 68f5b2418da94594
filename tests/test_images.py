import numpy as np
import pytest
from PIL import Image

from aerialseg.config import IGNORE_INDEX
from aerialseg.images import InputError, colorize, decode_colors, image_size, load_pair, read_image, write_png

COLORS = [(0, 0, 255), (0, 255, 0), (255, 255, 255)]
IGNORE = [(255, 0, 0)]


def _label(ids: np.ndarray, colors=COLORS + IGNORE) -> np.ndarray:
    return np.asarray(colors, dtype=np.uint8)[ids]


def test_decode_colors_exact_with_ignore():
    ids = np.random.default_rng(0).integers(0, 4, (30, 40))
    decoded = decode_colors(_label(ids), COLORS, IGNORE)
    expected = np.where(ids == 3, IGNORE_INDEX, ids)
    np.testing.assert_array_equal(decoded, expected)
    assert decoded.dtype == np.uint8


def test_unknown_colours_are_listed_with_counts_and_a_position():
    label = _label(np.zeros((10, 10), dtype=int))
    label[2, 3] = (10, 20, 30)
    label[5:7, 0] = (1, 2, 3)
    with pytest.raises(InputError) as error:
        decode_colors(label, COLORS, IGNORE, source="lbl.png")
    message = str(error.value)
    assert message.startswith("lbl.png: 3 pixels have a colour")
    assert "[1, 2, 3]: 2 pixels, e.g. at row 5, col 0" in message
    assert "[10, 20, 30]: 1 pixels, e.g. at row 2, col 3" in message


def test_size_mismatch_names_both_sizes(tmp_path):
    write_png(tmp_path / "image.png", np.zeros((20, 30, 3), np.uint8))
    write_png(tmp_path / "label.png", _label(np.zeros((20, 31), dtype=int)))
    with pytest.raises(InputError, match="label is 31 x 20 px but image .* is 30 x 20 px"):
        load_pair(tmp_path / "image.png", tmp_path / "label.png", COLORS)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="missing.png: file does not exist"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="broken.png: cannot read image"):
        read_image(tmp_path / "broken.png")


def test_write_png_round_trip_and_size(tmp_path):
    array = np.random.default_rng(1).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    write_png(tmp_path / "sub" / "a.png", array)
    np.testing.assert_array_equal(read_image(tmp_path / "sub" / "a.png"), array)
    assert image_size(tmp_path / "sub" / "a.png") == (17, 23)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.png"]  # no temporary file left


def test_palette_images_are_read_as_rgb(tmp_path):
    ids = np.array([[0, 1], [2, 0]], dtype=np.uint8)
    image = Image.fromarray(ids, mode="P")
    image.putpalette([0, 0, 255, 0, 255, 0, 255, 255, 255] + [0] * 759)
    image.save(tmp_path / "p.png")
    np.testing.assert_array_equal(load_pair(tmp_path / "p.png", tmp_path / "p.png", COLORS)[1], ids)


def test_colorize_maps_ids_and_blackens_ignore():
    ids = np.array([[0, 1], [2, IGNORE_INDEX]], dtype=np.uint8)
    rgb = colorize(ids, COLORS)
    assert rgb.dtype == np.uint8
    assert [tuple(v) for v in rgb.reshape(-1, 3)] == [COLORS[0], COLORS[1], COLORS[2], (0, 0, 0)]
