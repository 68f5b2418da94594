"""Tests for aerialseg.demo: shapes, determinism, colour coding, class shares, car placement."""

import functools

import numpy as np
import pytest

from aerialseg.demo import ISPRS_COLORS, render_scene

SHARE_RANGES = {  # percent of pixels at size 1024
    "Impervious surfaces": (20, 35),
    "Buildings": (15, 30),
    "Low vegetation": (20, 40),
    "Tree": (10, 25),
    "Car": (0.1, 1.0),
    "Clutter": (0, 1.0),
}


@functools.lru_cache(maxsize=None)
def _scene(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return render_scene(size, seed)


def _mask(label: np.ndarray, name: str) -> np.ndarray:
    return np.all(label == np.array(ISPRS_COLORS[name], np.uint8), axis=-1)


def _shares(label: np.ndarray) -> dict[str, float]:
    return {name: 100 * _mask(label, name).mean() for name in ISPRS_COLORS}


def _dilate(mask: np.ndarray, k: int) -> np.ndarray:
    out = mask.copy()
    padded = np.pad(mask, k)
    h, w = mask.shape
    for dy in range(2 * k + 1):
        for dx in range(2 * k + 1):
            out |= padded[dy:dy + h, dx:dx + w]
    return out


def test_the_demo_scene_is_coded_as_the_default_config_decodes_it(default_config):
    """The demo labels use the classes and the ignore colour of config.yaml, in its order."""
    classes = [(c["name"], tuple(c["color"])) for c in default_config["data"]["classes"]]
    assert classes == [(name, color) for name, color in ISPRS_COLORS.items() if name != "Clutter"]
    assert [tuple(c) for c in default_config["data"]["ignore_colors"]] == [ISPRS_COLORS["Clutter"]]


@pytest.mark.parametrize("size", [64, 100, 257])
def test_shapes_and_dtypes(size):
    image, label = render_scene(size, seed=3)
    assert image.shape == label.shape == (size, size, 3)
    assert image.dtype == label.dtype == np.uint8


def test_deterministic_per_seed():
    a_img, a_lab = _scene(256, 1)
    b_img, b_lab = render_scene(256, seed=1)
    assert a_img.tobytes() == b_img.tobytes()
    assert a_lab.tobytes() == b_lab.tobytes()
    c_img, c_lab = _scene(256, 2)
    assert not np.array_equal(a_img, c_img)
    assert not np.array_equal(a_lab, c_lab)


@pytest.mark.parametrize("size,seed", [(1024, 0), (256, 1)])
def test_label_uses_only_isprs_colours(size, seed):
    _, label = _scene(size, seed)
    known = np.zeros(label.shape[:2], bool)
    for name in ISPRS_COLORS:
        known |= _mask(label, name)
    assert known.all()


@pytest.mark.parametrize("seed", [0, 1])
def test_class_shares_at_1024(seed):
    _, label = _scene(1024, seed)
    shares = _shares(label)
    for name, (lo, hi) in SHARE_RANGES.items():
        assert lo <= shares[name] <= hi, (name, shares)


@pytest.mark.parametrize("seed", range(4))
def test_every_class_but_clutter_present_at_256(seed):
    _, label = _scene(256, seed)
    shares = _shares(label)
    for name in ISPRS_COLORS:
        if name != "Clutter":
            assert shares[name] > 0, (name, shares)


def test_image_is_not_a_colour_lookup():
    """Pixels of one class vary (texture, shadows, gradient) and classes overlap in colour."""
    image, label = _scene(1024, 0)
    img = image.astype(np.float32)
    for name in ("Impervious surfaces", "Buildings", "Low vegetation", "Tree"):
        assert img[_mask(label, name)].std(axis=0).min() > 8, name
    assert image.min() < 40 and image.max() > 200  # deep shadows and bright roofs / markings
    assert (image == 255).mean() < 0.01  # realistic, hardly saturated
    grey_bld = img[_mask(label, "Buildings")].mean(axis=0)
    assert grey_bld.max() - grey_bld.min() < 60  # roofs are not a pure colour


@pytest.mark.parametrize("size,seed", [(1024, 0), (1024, 1), (256, 2)])
def test_cars_lie_on_impervious_surface(size, seed):
    _, label = _scene(size, seed)
    car = _mask(label, "Car")
    ring = _dilate(car, 2) & ~car
    on_pavement = _mask(label, "Impervious surfaces")[ring].mean()
    assert on_pavement > 0.75, on_pavement


@pytest.mark.parametrize("size", [0, 32, 63])
def test_small_size_raises(size):
    with pytest.raises(ValueError, match="size"):
        render_scene(size)
