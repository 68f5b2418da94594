import copy

import pytest

from aerialseg import config as cfg
from aerialseg.config import Case, ConfigError, layout

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


def _mosaic(monkeypatch, settings: dict, patch_size: int, window: int | None = None):
    """The mosaic a prediction job's model gets (`inference.load_model`), from a model file
    that says its patch size and nothing else."""
    from aerialseg import backends, inference

    def load(runtime, model_path, exported, cache):
        return backends.Loaded({"case": "c", "patch_size": patch_size}, None, 2, "cpu", runtime.backend, "")

    monkeypatch.setattr(backends, "load", load)
    options = inference.PredictOptions.from_settings(settings)
    return inference.load_model(options, "model.pt", reading=inference.ImageReading(window=window)).options


def test_strides_default_from_patch_size(default_config, monkeypatch):
    config = cfg.validate(default_config, producible=DEMO)
    assert cfg.training_stride(config, 64) == 16
    assert _mosaic(monkeypatch, config, 64).stride == 32
    windowed = _mosaic(monkeypatch, config, 64, window=96)  # the console command's --window
    assert (windowed.size, windowed.stride) == (96, 48)
    config["experiment"]["stride"] = None
    config["predict"]["stride"] = 8
    assert cfg.training_stride(config, 64) == 64
    assert _mosaic(monkeypatch, config, 64).stride == 8


def test_prediction_runs_where_training_does_unless_told_otherwise(default_config):
    from aerialseg.inference import PredictOptions

    config = cfg.validate(default_config, producible=DEMO)
    options = PredictOptions.from_settings(config)
    assert (options.runtime.device, options.runtime.threads) == cfg.prediction_resources(config) == ("auto", 4)
    assert (options.stride, options.batch_size, options.blend) == (None, None, "mean")
    config["predict"].update(device="cpu", threads=2, batch_size=100, stride=8)
    options = PredictOptions.from_settings(config)
    assert (options.runtime.device, options.runtime.threads) == ("cpu", 2)
    assert (options.stride, options.batch_size) == (8, 100)
    assert PredictOptions.from_settings(config, threads=3).runtime.threads == 3  # the job's own threads


def test_each_job_gets_the_settings_that_shape_it_and_nothing_else(default_config):
    config = cfg.validate(default_config, producible=DEMO)
    train = cfg.job_settings(config, "train")
    assert train["train"]["epochs"] == 20 and "device" not in train["train"] and "predict" not in train
    assert train["experiment"]["stride"] == 16  # the patches it learns from, for the record
    # prediction reads the data settings from the model's checkpoint, which records them
    assert cfg.job_settings(config, "predict") == {"predict": {
        "stride": None, "blend": "mean", "tta": False, "vectors": False, "min_area": 0, "precision": "auto",
        "memory_format": "auto", "temperature_scaling": True}}
    assert cfg.job_settings(config, "summary_figure") == {"figures": {"metrics": ["miou", "f1", "overall_accuracy"]}}
    merged = cfg.with_run_options(train, config, "train")
    assert merged["train"]["device"] == "auto" and cfg.without_run_options(merged, "train") == train
    everything = cfg.result_settings(config)
    assert "figures" not in everything and everything["demo"] == {"size": 1024, "seed": 0}
    assert cfg.fingerprint(everything) == cfg.fingerprint(cfg.result_settings(config)) and len(cfg.fingerprint(everything)) == 12
    config["predict"]["blend"] = "gaussian"
    assert cfg.fingerprint(cfg.result_settings(config)) != cfg.fingerprint(everything)


def test_a_run_knows_its_folder():
    assert layout.run_dir(cfg.Run(Case("imagenet", 64))) == "results/cases/imagenet_p64"
    assert layout.run_dir(cfg.Run(Case("scratch", 128), 3)) == "results/repeats/3/cases/scratch_p128"
    assert cfg.Run(Case("scratch", 128), 3).label == "scratch_p128 (repeat 3)"
    with pytest.raises(ValueError, match="repeats count from 1"):
        cfg.Run(Case("scratch", 32), 0)


def test_a_partial_config_loads_merged_over_the_defaults_as_snakemake_merges_it(tmp_path, monkeypatch):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="'data' is a required property"):
        cfg.load_keys(root / "config/quick.yaml")  # alone it is only a part
    quick = cfg.load_keys(root / "config.yaml", root / "config/quick.yaml")
    assert quick["experiment"]["stride"] is None and quick["train"]["epochs"] == 14  # from quick.yaml
    assert quick["experiment"]["patch_sizes"] == [32, 64, 128] and quick["train"]["lr"] == 0.001  # from config.yaml


def _tiles_config(default_config, tmp_path, train_names=("north", "south")):
    for name in {*train_names, "east"}:
        for kind in ("", "_label"):
            (tmp_path / f"{name}{kind}.png").touch()
    default_config["data"]["train"] = [{"image": str(tmp_path / f"{n}.png"), "label": str(tmp_path / f"{n}_label.png")}
                                       for n in train_names]
    default_config["data"]["test"] = {"image": str(tmp_path / "east.png"), "label": str(tmp_path / "east_label.png")}
    return default_config


def test_a_split_is_one_pair_or_a_list_of_tiles_named_after_their_files(default_config, tmp_path):
    config = cfg.validate(_tiles_config(default_config, tmp_path))
    assert cfg.tiled(config, "train") and not cfg.tiled(config, "test")
    north, south = cfg.tiles(config, "train")
    assert (north.name, north.folder, north.label) == ("north", "north", str(tmp_path / "north_label.png"))
    assert layout.tile_file("results/cases/x/train", north, "metrics.csv") == "results/cases/x/train/north/metrics.csv"
    (east,) = cfg.tiles(config, "test")
    assert (east.name, east.folder) == ("east", "") and layout.tile_file("r/test", east, "metrics.csv") == "r/test/metrics.csv"
    assert cfg.split_tiles(config) == {"train": [north, south], "test": [east]}


def test_two_tiles_with_one_name_and_unknown_map_cases_stop_before_any_job(default_config, tmp_path):
    config = _tiles_config(default_config, tmp_path, train_names=("north", "north"))
    config["experiment"]["split"] = "tiles"
    config["predict"] = {"stride": None, "cases": ["imagenet_p48"]}
    config["data"]["predict"] = [str(tmp_path / "nowhere_*.tif")]
    with pytest.raises(ConfigError) as error:
        cfg.validate(config)
    message = str(error.value)
    assert "data.train: two tiles are named 'north' (after their image files)" in message
    assert "predict.cases[0]: 'imagenet_p48' is not a case of this study" in message
    assert f"data.predict[0]: {tmp_path}/nowhere_*.tif matches no file" in message


def test_images_to_map_are_paths_or_glob_patterns(default_config, tmp_path):
    config = _tiles_config(default_config, tmp_path)
    for name in ("photo_b", "photo_a", "other"):
        (tmp_path / f"{name}.tif").touch()
    config["data"]["predict"] = [str(tmp_path / "photo_*.tif"), str(tmp_path / "other.tif")]
    maps = cfg.maps(cfg.validate(config))
    assert [(m.name, m.label) for m in maps] == [("photo_a", None), ("photo_b", None), ("other", None)]
    assert cfg.map_cases(cfg.validate(config)) is None  # the best case, once known


# --- errors that teach ------------------------------------------------------------------------


def _problems(config: dict) -> list[str]:
    with pytest.raises(ConfigError) as error:
        cfg.validate_keys(config)
    return str(error.value).splitlines()[1:]


def test_an_unknown_key_names_the_closest_known_one(default_config):
    default_config["experiment"]["patch_size"] = default_config["experiment"].pop("patch_sizes")
    default_config["trian"] = default_config.pop("train")
    problems = _problems(default_config)
    assert "  - experiment: unknown key(s) 'patch_size' (did you mean 'patch_sizes'?)" in problems
    assert "  - (top level): unknown key(s) 'trian' (did you mean 'train'?)" in problems


def test_an_unknown_key_like_none_lists_the_known_ones(default_config):
    default_config["model"]["zzz"] = 1
    assert _problems(default_config) == [
        "  - model: unknown key(s) 'zzz'; known keys: architecture, encoder, encoder_depth, decoder_channels, weights"]


def test_a_malformed_tile_names_its_index_and_the_missing_or_unknown_field(default_config):
    default_config["data"]["train"] = [{"image": "a.png", "label": "a_label.png"}, {"image": "b.png"},
                                       {"image": "c.png", "lable": "c_label.png"}]
    default_config["data"]["test"] = {"image": "d.png"}
    assert _problems(default_config) == [
        "  - data.test: 'label' is a required property",
        "  - data.train[1]: 'label' is a required property",
        "  - data.train[2]: unknown key(s) 'lable' (did you mean 'label'?)",
        "  - data.train[2]: 'label' is a required property",
    ]


def test_a_value_of_no_accepted_type_names_the_types_and_what_was_expected(default_config):
    default_config["data"]["train"] = "tiles/*.tif"
    default_config["model"]["decoder_channels"] = "wide"
    train, decoder = _problems(default_config)
    assert train.startswith("  - data.train: 'tiles/*.tif' has none of the accepted types (object, array); expected "
                            "one image/label pair; a list of them")
    assert decoder.startswith("  - model.decoder_channels: 'wide' has none of the accepted types (integer, array); "
                              "expected the decoder's width")


# --- many tiles by pattern --------------------------------------------------------------------


def _pattern_config(default_config, tmp_path, stems=("area3", "area1", "area11"), labelled=None):
    """Images top/{stem}.tif and labels gts/{stem}.tif (for the ``labelled`` stems, default all)."""
    for folder in ("top", "gts"):
        (tmp_path / folder).mkdir()
    for stem in stems:
        (tmp_path / "top" / f"{stem}.tif").touch()
    for stem in stems if labelled is None else labelled:
        (tmp_path / "gts" / f"{stem}.tif").touch()
    default_config["data"]["train"] = {"images": f"{tmp_path}/top/*.tif", "labels": f"{tmp_path}/gts/{{stem}}.tif"}
    return default_config


def test_a_tile_pattern_expands_into_the_sorted_list_of_pairs(default_config, tmp_path):
    config = cfg.validate(_pattern_config(default_config, tmp_path), producible=DEMO)
    assert config["data"]["train"] == [{"image": f"{tmp_path}/top/{stem}.tif", "label": f"{tmp_path}/gts/{stem}.tif"}
                                       for stem in ("area1", "area11", "area3")]
    assert cfg.tiled(config, "train") and [t.name for t in cfg.tiles(config, "train")] == ["area1", "area11", "area3"]
    assert cfg.validate(config, producible=DEMO) == config  # the list form validates as it is


def test_a_tile_pattern_merged_over_a_pair_replaces_it(default_config, tmp_path):
    """As Snakemake merges a --configfile with a pattern over config.yaml's pair (the demo scene)."""
    pattern = _pattern_config(copy.deepcopy(default_config), tmp_path)["data"]["train"]
    config = cfg.validate(cfg.merge(default_config, {"data": {"train": pattern}}), producible=DEMO)
    assert [tile.name for tile in cfg.tiles(config, "train")] == ["area1", "area11", "area3"]


def test_a_tile_pattern_that_matches_nothing_is_named(default_config, tmp_path):
    config = _pattern_config(default_config, tmp_path)
    config["data"]["train"]["images"] = f"{tmp_path}/top/*.png"
    with pytest.raises(ConfigError) as error:
        cfg.validate(config, producible=DEMO)
    assert str(error.value).splitlines()[1:] == [f"  - data.train.images: the pattern {tmp_path}/top/*.png matches no file"]


def test_an_image_of_a_tile_pattern_without_its_label_is_named_with_the_label_expected(default_config, tmp_path):
    config = _pattern_config(default_config, tmp_path, labelled=("area1", "area3"))
    with pytest.raises(ConfigError) as error:
        cfg.validate(config, producible=DEMO)
    assert str(error.value).splitlines()[1:] == [
        f"  - data.train.labels: image {tmp_path}/top/area11.tif has no label {tmp_path}/gts/area11.tif "
        f"(file not found; labels: {tmp_path}/gts/{{stem}}.tif)"]


def test_a_tile_pattern_needs_stem_in_its_labels_and_its_two_keys(default_config, tmp_path):
    config = _pattern_config(default_config, tmp_path)
    config["data"]["train"]["labels"] = f"{tmp_path}/gts/all.tif"
    config["data"]["test"] = {"images": "top/*.tif", "lables": "gts/{stem}.tif"}
    assert _problems(config) == [
        "  - data.test: unknown key(s) 'lables' (did you mean 'labels'?)",
        "  - data.test: 'labels' is a required property",
        f"  - data.train.labels: {tmp_path}/gts/all.tif has no {{stem}}, so every image would get the same label "
        "(write e.g. labels/{stem}.png)"]


def test_without_file_checks_a_pattern_that_matches_nothing_stays_as_written(default_config, tmp_path):
    config = _pattern_config(default_config, tmp_path)
    config["data"]["train"]["images"] = f"{tmp_path}/elsewhere/*.tif"
    assert cfg.validate_keys(config)["data"]["train"] == config["data"]["train"]


VAIHINGEN_AREAS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 20, 21, 22, 23, 24, 26, 27, 28, 29, 30,
                   31, 32, 33, 34, 35, 37, 38)


def test_the_many_tile_vaihingen_config_validates_and_splits_the_33_tiles(tmp_path, monkeypatch):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    files = (root / "config.yaml", root / "config/isprs_vaihingen_tiles.yaml")
    as_written = cfg.load_keys(*files)  # the schema part: no data here
    assert as_written["data"]["train"]["labels"] == "data/vaihingen/gts/{stem}.tif"
    for folder in ("top", "gts"):
        (tmp_path / "data/vaihingen" / folder).mkdir(parents=True)
        for area in VAIHINGEN_AREAS:
            (tmp_path / f"data/vaihingen/{folder}/top_mosaic_09cm_area{area}.tif").touch()
    config = cfg.load(*files)
    train, test = ([int(t.name.removeprefix("top_mosaic_09cm_area")) for t in cfg.tiles(config, s)] for s in cfg.SPLITS)
    assert sorted(train) == [a for a in VAIHINGEN_AREAS if a % 2] and sorted(test) == [a for a in VAIHINGEN_AREAS
                                                                                         if not a % 2]
    assert cfg.tiles(config, "test")[0].label == "data/vaihingen/gts/top_mosaic_09cm_area10.tif"  # sorted by path


def test_band_numbers_count_from_1_and_bands_from_0_still_work_with_a_deprecation_message(default_config, caplog):
    raw = copy.deepcopy(default_config)
    assert "bands" not in raw["data"] and "band_numbers" not in raw["data"]  # config.yaml names neither
    assert (cfg.validate_keys(raw)["data"]["bands"], cfg.validate_keys(raw)["data"]["band_numbers"]) == ([0, 1, 2],
                                                                                                          [1, 2, 3])
    raw["data"]["band_numbers"] = [3, 2, 1]
    with caplog.at_level("WARNING"):
        validated = cfg.validate_keys(raw)
    assert validated["data"]["bands"] == [2, 1, 0] and not caplog.records
    assert cfg.validate_keys(validated)["data"]["bands"] == [2, 1, 0]  # a validated config validates as it is
    del raw["data"]["band_numbers"]
    raw["data"]["bands"] = [3, 0, 1]
    with caplog.at_level("WARNING"):
        validated = cfg.validate_keys(raw)
    assert validated["data"]["band_numbers"] == [4, 1, 2]
    assert caplog.messages == ["data.bands (counting from 0) is deprecated: write data.band_numbers: [4, 1, 2] "
                               "(counting from 1, as GDAL and QGIS do)"]
    raw["data"]["band_numbers"] = [1, 2, 3]
    with pytest.raises(ConfigError, match=r"data.bands \[3, 0, 1\] and data.band_numbers \[1, 2, 3\]: give only"):
        cfg.validate_keys(raw)
    raw["data"]["band_numbers"] = [0, 1]
    with pytest.raises(ConfigError, match=r"data.band_numbers\[0\]"):
        cfg.validate_keys(raw)


def test_an_image_to_map_named_like_the_confidence_raster_of_another_stops_before_any_job(default_config, tmp_path):
    config = _tiles_config(default_config, tmp_path)
    for name in ("roofs", "roofs_confidence", "roads", "roads_preview"):
        (tmp_path / f"{name}.tif").touch()
    config["data"]["predict"] = [str(tmp_path / "r*.tif")]
    with pytest.raises(ConfigError) as error:
        cfg.validate(config)
    message = str(error.value)
    assert "data.predict: the files beside the map of 'roofs' would be the maps of ['roofs_confidence']" in message
    assert "data.predict: the preview of 'roads' would be the map of 'roads_preview'" in message


def test_a_confidence_threshold_lies_in_0_1(default_config):
    default_config["predict"]["confidence_threshold"] = 0
    with pytest.raises(ConfigError, match="confidence_threshold"):
        cfg.validate(default_config, producible=DEMO)
    default_config["predict"]["confidence_threshold"] = 0.6
    assert cfg.validate(default_config, producible=DEMO)["predict"]["probabilities"] is False
