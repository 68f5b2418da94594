import numpy as np
import pytest
import tifffile
from PIL import Image

from aerialseg.class_ids import IGNORE_INDEX
from aerialseg.errors import InputError
from aerialseg.io.labels import decode_colors, decode_label, gray_level, load_pair, lookup_table
from aerialseg.io.read import image_header, image_size, read_image
from aerialseg.io.spec import DataSpec
from aerialseg.io.write import colorize, write_png

COLORS = [(0, 0, 255), (0, 255, 0), (255, 255, 255)]
IGNORE = [(255, 0, 0)]
SPEC = DataSpec(colors=tuple(COLORS), ignore_colors=tuple(IGNORE))
ISPRS = {
    "Buildings": (0, 0, 255), "Tree": (0, 255, 0), "Low vegetation": (0, 255, 255),
    "Car": (255, 255, 0), "Impervious surfaces": (255, 255, 255),
}


def _label(ids: np.ndarray, colors=COLORS + IGNORE) -> np.ndarray:
    return np.asarray(colors, dtype=np.uint8)[ids]


def test_decode_colors_exact_with_ignore():
    ids = np.random.default_rng(0).integers(0, 4, (1100, 40))  # more rows than one decoding chunk
    decoded = decode_colors(_label(ids), COLORS, IGNORE)
    np.testing.assert_array_equal(decoded, np.where(ids == 3, IGNORE_INDEX, ids))
    assert decoded.dtype == np.uint8


def test_unknown_colours_are_listed_with_counts_and_a_position():
    label = _label(np.zeros((10, 10), dtype=int))
    label[2, 3] = (10, 20, 30)
    label[5:7, 0] = (1, 2, 3)
    with pytest.raises(InputError) as error:
        decode_colors(label, COLORS, IGNORE, source="lbl.png")
    message = str(error.value)
    assert message.startswith("lbl.png: 3 pixels have a colour that is neither in data.classes[].color")
    assert "[1, 2, 3]: 2 pixels, e.g. at row 5, col 0" in message
    assert "[10, 20, 30]: 1 pixels, e.g. at row 2, col 3" in message


def test_at_most_five_unknown_colours_are_listed():
    label = _label(np.zeros((4, 10), dtype=int))
    label[0, :8] = np.arange(1, 9)[:, None]
    message = str(pytest.raises(InputError, decode_colors, label, COLORS).value)
    assert "(the 5 most frequent of 8 shown)" in message and message.count("pixels, e.g.") == 5


def test_index_labels_use_class_values_and_ignore_values():
    spec = DataSpec(colors=tuple(COLORS), label_format="index", values=(1, 2, 3), ignore_values=(0,))
    label = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    np.testing.assert_array_equal(decode_label(label, spec), [[IGNORE_INDEX, 0], [1, 2]])
    label16 = np.array([[1, 300]], dtype=np.uint16)
    with pytest.raises(InputError, match=r"value 300: 1 pixels, e.g. at row 0, col 1"):
        decode_label(label16, spec, source="idx.png")
    with pytest.raises(InputError, match="needs a single-channel label"):
        decode_label(np.zeros((2, 2, 3), np.uint8), spec)


def test_gray_sorted_numbers_isprs_colours_by_grey_level():
    spec = DataSpec(colors=tuple(ISPRS.values()), label_format="gray_sorted", names=tuple(ISPRS))
    assert [int(g) for g in gray_level(np.array(list(ISPRS.values())))] == [29, 150, 179, 226, 255]
    ids = np.array([[4, 3, 2, 1, 0]])
    label = np.asarray(list(ISPRS.values()), dtype=np.uint8)[ids]
    np.testing.assert_array_equal(decode_label(label, spec), ids)
    # Pillow's own greyscale conversion gives the same levels
    grey = np.asarray(Image.fromarray(label).convert("L"))
    np.testing.assert_array_equal(grey[0], [255, 226, 179, 150, 29])


def test_gray_sorted_refuses_colours_that_collapse_and_a_wrong_order():
    dubai = DataSpec(colors=((110, 193, 228), (226, 169, 41)), label_format="gray_sorted", names=("Road", "Water"))
    with pytest.raises(InputError, match=r"cannot tell Road \(grey level 172\) from Water \(grey level 171\)"):
        lookup_table(dubai)
    reversed_isprs = DataSpec(colors=tuple(ISPRS.values())[::-1], label_format="gray_sorted", names=tuple(ISPRS)[::-1])
    with pytest.raises(InputError, match="must be listed in that order: Buildings, Tree, Low vegetation, Car, Impervious surfaces"):
        lookup_table(reversed_isprs)


def test_size_mismatch_names_both_sizes(tmp_path):
    write_png(tmp_path / "image.png", np.zeros((20, 30, 3), np.uint8))
    write_png(tmp_path / "label.png", _label(np.zeros((20, 31), dtype=int)))
    with pytest.raises(InputError, match="label is 31 x 20 px but image .* is 30 x 20 px"):
        load_pair(tmp_path / "image.png", tmp_path / "label.png", SPEC)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="missing.png: file does not exist"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="broken.png: cannot read image"):
        read_image(tmp_path / "broken.png")
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match="broken.tif: cannot read image"):
        image_size(tmp_path / "broken.tif")


@pytest.mark.parametrize("planar", [False, True])
def test_16_bit_multiband_tiff_bands_and_value_range(tmp_path, planar):
    rng = np.random.default_rng(2)
    data = rng.integers(0, 4096, (33, 45, 4), dtype=np.uint16)  # 12-bit values, 4 bands
    path = tmp_path / "image.tif"
    if planar:
        tifffile.imwrite(path, np.moveaxis(data, -1, 0), photometric="minisblack", planarconfig="separate")
    else:
        tifffile.imwrite(path, data, photometric="minisblack", planarconfig="contig")
    assert image_size(path) == (33, 45)
    spec = DataSpec(colors=tuple(COLORS), bands=(3, 0, 1), value_range=(0, 4095))
    image = read_image(path, spec)
    assert image.shape == (33, 45, 3) and image.dtype == np.uint8
    expected = np.clip(np.rint(data[:, :, [3, 0, 1]] * (255 / 4095)), 0, 255)
    np.testing.assert_array_equal(image, expected)
    full_range = read_image(path, DataSpec(colors=tuple(COLORS), bands=(0,)))
    np.testing.assert_array_equal(full_range[:, :, 0], np.rint(data[:, :, 0] * (255 / 65535)))
    with pytest.raises(InputError, match="asks for band 5 .* the image has 4 band"):
        read_image(path, DataSpec(colors=tuple(COLORS), bands=(0, 4)))


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
    np.testing.assert_array_equal(load_pair(tmp_path / "p.png", tmp_path / "p.png", SPEC)[1], ids)


def test_colorize_maps_ids_and_blackens_ignore():
    ids = np.array([[0, 1], [2, IGNORE_INDEX]], dtype=np.uint8)
    rgb = colorize(ids, COLORS)
    assert rgb.dtype == np.uint8
    assert [tuple(v) for v in rgb.reshape(-1, 3)] == [COLORS[0], COLORS[1], COLORS[2], (0, 0, 0)]


def test_header_gives_the_band_count_without_reading_pixels(tmp_path):

    tifffile.imwrite(tmp_path / "four.tif", np.zeros((4, 12, 10), np.uint16), photometric="minisblack", planarconfig="separate")
    assert image_header(tmp_path / "four.tif") == (12, 10, 4)
    write_png(tmp_path / "rgb.png", np.zeros((5, 6, 3), np.uint8))
    assert image_header(tmp_path / "rgb.png") == (5, 6, 3)
