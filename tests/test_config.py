import pytest

from aerialseg import config as cfg
from aerialseg.config import Case, ConfigError

DEMO = {f"results/demo/{i}/{k}.png" for i in ("train", "test") for k in ("image", "label")}


def test_default_config_is_valid_and_gets_defaults(default_config):
    default_config.pop("model")
    config = cfg.validate(default_config, producible=DEMO)
    assert config["model"] == {"architecture": "DeepLabV3Plus", "encoder": "mobilenet_v2", "encoder_depth": 4, "decoder_channels": 256, "weights": None}
    assert config["experiment"]["patch_sizes"] == [32, 64, 128]
    assert [c.name for c in cfg.cases(config)] == [
        "imagenet_p32", "imagenet_p64", "imagenet_p128", "scratch_p32", "scratch_p64", "scratch_p128",
    ]


def test_patch_size_not_multiple_of_16_names_the_key(default_config):
    default_config["experiment"]["patch_sizes"] = [30]
    with pytest.raises(ConfigError, match=r"experiment\.patch_sizes\[0\]: 30 is not a multiple of 16"):
        cfg.validate(default_config, producible=DEMO)


def test_missing_image_names_key_and_file(default_config, tmp_path):
    default_config["data"]["train"]["image"] = str(tmp_path / "nowhere.tif")
    with pytest.raises(ConfigError) as error:
        cfg.validate(default_config, producible=DEMO)
    assert f"data.train.image: file {tmp_path / 'nowhere.tif'} does not exist" in str(error.value)


def test_every_problem_is_listed_at_once(default_config):
    default_config["train"]["epochs"] = 0
    default_config["experiment"]["inits"] = ["imagenet", "random"]
    default_config["typo"] = 1
    with pytest.raises(ConfigError) as error:
        cfg.validate(default_config, producible=DEMO)
    message = str(error.value)
    assert "train.epochs: 0 is less than the minimum of 1" in message
    assert "experiment.inits[1]: 'random' is not one of ['imagenet', 'scratch']" in message
    assert "(top level): unknown key(s) 'typo'" in message


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda c: c["data"]["classes"][1].update(color=[0, 0, 255]), "colour [0, 0, 255] is given to more than one class"),
        (lambda c: c["data"]["classes"][1].update(name="Buildings"), "class name 'Buildings' appears more than once"),
        (lambda c: c["data"]["ignore_colors"].append([0, 255, 0]), "data.ignore_colors[1]: [0, 255, 0] is also a class colour"),
        (lambda c: c["predict"].update(stride=48), "predict.stride: 48 is larger than the smallest patch size 32"),
    ],
)
def test_semantic_checks(default_config, change, expected):
    change(default_config)
    with pytest.raises(ConfigError, match=__import__("re").escape(expected)):
        cfg.validate(default_config, producible=DEMO)


def test_load_reports_yaml_errors(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match=f"config file {path} is not valid YAML"):
        cfg.load(path)


def test_case_names_round_trip():
    assert Case.parse("imagenet_p128") == Case("imagenet", 128)
    assert Case("scratch", 32).name == "scratch_p32"
    with pytest.raises(ValueError):
        Case.parse("imagenet128")


def test_strides_default_from_patch_size(default_config):
    config = cfg.validate(default_config, producible=DEMO)
    assert cfg.training_stride(config, 64) == 16
    assert cfg.prediction_stride(config, 64) == 32
    config["experiment"]["stride"] = None
    config["predict"]["stride"] = 8
    assert cfg.training_stride(config, 64) == 64
    assert cfg.prediction_stride(config, 64) == 8
