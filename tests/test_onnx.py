"""ONNX export, the ONNX Runtime back-end and the host mosaic (issue: models that leave the project)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from aerialseg import host_mosaic
from aerialseg.class_ids import IGNORE_INDEX
from aerialseg.host_mosaic import Tiling

onnx = pytest.importorskip("onnx", reason="onnx is not installed (requirements.txt)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (requirements.txt)")
torch = pytest.importorskip("torch")

from aerialseg import backends, export, files, mosaic  # noqa: E402
from aerialseg.jobs import prediction  # noqa: E402
from aerialseg.io.read import read_image  # noqa: E402
from aerialseg.io.write import write_png  # noqa: E402
from aerialseg.errors import ConfigError, InputError  # noqa: E402

COLORS = [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
DATA = {"classes": [{"name": n, "color": c} for n, c in zip(["road", "tree", "water"], COLORS)],
        "label_format": "color", "ignore_colors": [], "ignore_values": [], "bands": [0, 1, 2], "value_range": None,
        "nodata": None, "image_bands": 3}


def _checkpoint(path, init="scratch", bands=3, data=None, seed=0):
    """A small model with random weights and batch-norm statistics (so folding them matters)."""
    from aerialseg.model import ModelSpec, build, save_checkpoint

    torch.manual_seed(seed)
    spec = ModelSpec(3, init, decoder_channels=32, in_channels=bands)
    net = build(spec)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.3, 0.3)
            module.running_var.uniform_(0.5, 2.0)
    head = net.segmentation_head[0]  # a head that separates the classes: maps of several classes
    head.weight.data.normal_(0, 1.0)
    head.bias.data.zero_()
    save_checkpoint(path, net, spec, case=f"{init}_p32", patch_size=32, data=data or DATA, repeat=2)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    model_pt = _checkpoint(folder / "model.pt", init="imagenet")
    export.export(model_pt, folder / "model.onnx", {"stride": 24, "blend": "gaussian"})
    return model_pt, folder / "model.onnx"


def _props(path):
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_the_exported_graph_is_valid_has_dynamic_shapes_and_no_batch_norm(exported):
    graph = onnx.load(str(exported[1]))
    onnx.checker.check_model(graph)
    assert graph.opset_import[0].version == export.OPSET
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in (graph.graph.input[0],
                                                                                          graph.graph.output[0])]
    assert dims == [["batch", 3, "height", "width"], ["batch", 3, "height", "width"]]
    ops = {node.op_type for node in graph.graph.node}
    assert "BatchNormalization" not in ops and "Softmax" in ops


def test_the_file_carries_what_mapping_needs_and_the_deepness_keys(exported):
    props = _props(exported[1])
    meta = json.loads(props["aerialseg"])
    assert meta["case"] == "imagenet_p32" and meta["repeat"] == 2 and meta["patch_size"] == 32
    assert meta["predict"] == {"stride": 24, "blend": "gaussian"}
    assert meta["data"]["classes"][2] == {"name": "water", "color": [0, 0, 255]}
    assert meta["source_sha256"] == files.sha256(exported[0])
    deepness = {key: json.loads(props[key]) for key in ("model_type", "class_names", "tile_size", "tiles_overlap",
                                                        "standardization_mean", "standardization_std")}
    assert deepness == {"model_type": "Segmentor", "class_names": {"0": "road", "1": "tree", "2": "water"},
                        "tile_size": 32, "tiles_overlap": 25, "standardization_mean": [0.485, 0.456, 0.406],
                        "standardization_std": [0.229, 0.224, 0.225]}
    assert "resolution" not in props  # the training imagery had no georeference


def test_deepness_standardisation_folds_a_value_range_into_mean_and_std():
    """Deepness feeds raw / 255; with a value range 0..4095 the model wants raw / 4095."""
    spec = {"n_classes": 2, "init": "scratch", "in_channels": 2}
    mean, std = export.deepness_standardization(spec, [0, 4095])
    raw = np.array([0.0, 1000.0, 4095.0])
    np.testing.assert_allclose((raw / 255 - mean[0]) / std[0], raw / 4095, rtol=1e-6)
    mean, std = export.deepness_standardization({**spec, "init": "imagenet"}, [100, 355])
    np.testing.assert_allclose((np.array([100.0, 355.0]) / 255 - mean[0]) / std[0],
                               (np.array([0.0, 1.0]) - 0.485) / 0.229, rtol=1e-6)


def test_onnx_runtime_gives_torch_softmax_and_the_same_argmax(exported):
    from aerialseg.model import load_checkpoint

    net, spec, _ = load_checkpoint(exported[0])
    model = backends.OnnxModel.load(exported[1].read_bytes(), exported[1], threads=1)
    windows = np.random.default_rng(0).integers(0, 256, (5, 48, 80, 3), dtype=np.uint8)
    with torch.no_grad():
        from aerialseg.model import normalize

        logits = net(normalize(torch.from_numpy(windows).permute(0, 3, 1, 2), spec)).numpy()
    probabilities = model.outputs(windows)
    np.testing.assert_allclose(probabilities, torch.softmax(torch.from_numpy(logits), 1).numpy(), atol=1e-5)
    assert (probabilities.argmax(1) == logits.argmax(1)).mean() > 0.9999
    # the mosaic's model runs the graph without its softmax: torch's logits, which it blends as they are
    for_mosaic = backends.OnnxModel.load_logits(exported[1].read_bytes(), exported[1], threads=1)
    assert for_mosaic.logits and for_mosaic.meta == model.meta
    np.testing.assert_allclose(for_mosaic.scores(windows), logits, atol=1e-4)


def test_the_logits_graph_drops_the_softmax_and_the_quantisation_after_it(exported):
    graph = onnx.load_from_string(backends.logits_graph(exported[1].read_bytes()))
    assert [node.op_type for node in graph.graph.node][-1] == "Resize"  # the segmentation head's upsampling
    assert "Softmax" not in {node.op_type for node in graph.graph.node}
    dq = onnx.helper.make_node("DequantizeLinear", ["q", "scale"], ["probabilities"])
    q = onnx.helper.make_node("QuantizeLinear", ["p", "scale"], ["q"])
    softmax = onnx.helper.make_node("Softmax", ["logits"], ["p"], axis=1)
    relu = onnx.helper.make_node("Relu", ["x"], ["logits"])
    value = onnx.helper.make_tensor_value_info
    scale = onnx.helper.make_tensor("scale", onnx.TensorProto.FLOAT, [], [1 / 255])
    made = onnx.helper.make_model(onnx.helper.make_graph(
        [relu, softmax, q, dq], "g", [value("x", onnx.TensorProto.FLOAT, [1, 2])],
        [value("probabilities", onnx.TensorProto.FLOAT, [1, 2])], [scale]))
    cut = onnx.load_from_string(backends.logits_graph(made.SerializeToString())).graph
    assert [node.op_type for node in cut.node] == ["Relu"] and cut.output[0].name == "logits"
    last_axis = onnx.helper.make_model(onnx.helper.make_graph(
        [relu, onnx.helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)], "g",
        [value("x", onnx.TensorProto.FLOAT, [1, 2])], [value("probabilities", onnx.TensorProto.FLOAT, [1, 2])]))
    assert backends.logits_graph(last_axis.SerializeToString()) is None  # not a softmax over the classes


def _scores(windows):
    """A deterministic stand-in model on the host: (B, s, s, C) uint8 -> (B, 3, s, s) float32."""
    x = windows.astype(np.float32) / 255
    return np.stack([x[..., 0] - x[..., 1], np.sin(7 * x[..., 2]), x.mean(-1) * 0.3], axis=1).astype(np.float32)


def _torch_scores(batch):
    return torch.from_numpy(_scores(batch.permute(0, 2, 3, 1).numpy()))


@pytest.mark.parametrize("blend", ["mean", "gaussian"])
@pytest.mark.parametrize("tta", [False, True])
def test_the_host_mosaic_sums_as_the_device_mosaic_does(blend, tta):
    """Same windows, same order, same arithmetic: the blended scores equal the torch mosaic's
    (bit for bit with the mean blend), on an image that is no multiple of window or stride,
    in batches that split window rows."""
    image = np.random.default_rng(1).integers(0, 256, (77, 101, 3), dtype=np.uint8)
    host_predict = host_mosaic.with_flips(_scores) if tta else _scores
    torch_predict = mosaic.with_flips(_torch_scores) if tta else _torch_scores
    tiling = Tiling(32, 12, batch_size=5, blend=blend)
    host = np.concatenate([b for _, b, _ in host_mosaic.iter_strips(host_predict, image, 3, tiling)], 1)
    device = mosaic.predict_logits(torch_predict, image, 3, tiling).numpy()
    if blend == "mean":
        np.testing.assert_array_equal(host, device)
    else:
        np.testing.assert_allclose(host, device, rtol=1e-6, atol=1e-7)
    assert (host.argmax(0) == device.argmax(0)).all()


class _Image:
    """An array with no-data: the left 40 columns and a block are invalid."""

    def __init__(self, array):
        self.array, self.shape = array, array.shape[:2]
        self.valid = np.ones(self.shape, bool)
        self.valid[:, :40] = False
        self.valid[50:, 60:] = False

    def rows(self, top, bottom):
        return self.array[top:bottom], self.valid[top:bottom]


def test_windows_wholly_in_no_data_are_not_predicted_and_the_rest_is_unchanged():
    image = _Image(np.random.default_rng(2).integers(0, 256, (90, 120, 3), dtype=np.uint8))
    calls = []

    def counting(windows):
        calls.append(len(windows))
        return _scores(windows)

    ids = np.concatenate([b for _, b in host_mosaic.iter_ids(counting, image, 3, Tiling(32, 16))])
    whole = np.concatenate([b for _, b in host_mosaic.iter_ids(_scores, image.array, 3, Tiling(32, 16))])
    assert (ids[image.valid] == whole[image.valid]).all() and (ids[~image.valid] == IGNORE_INDEX).all()
    assert sum(calls) < 6 * 7  # of the 42 windows, those in the collar and the block were skipped


def _settings(backend, **predict):
    from aerialseg.config import sections

    return sections(predict={"stride": None, "backend": backend, "fold_batchnorm": False, **predict},
                    train={"device": "cpu", "threads": 1})


def test_a_map_from_onnx_runtime_equals_torch_float32(tmp_path, exported):
    """The same model on both back-ends: the class ids agree (at most 0.01 % may differ where
    scores tie to rounding), and a model.onnx maps exactly as its model.pt on ONNX Runtime."""
    image = np.random.default_rng(3).integers(0, 256, (150, 170, 3), dtype=np.uint8)
    write_png(tmp_path / "area.png", image)
    maps = {}
    for name, model, backend in (("torch", exported[0], "torch"), ("ort_pt", exported[0], "onnxruntime"),
                                 ("ort_onnx", exported[1], "auto")):
        files = prediction.MapFiles(tmp_path / "area.png", tmp_path / f"{name}.png", tmp_path / f"{name}_preview.png")
        prediction.map_images(_settings(backend), model, [files])
        maps[name] = np.asarray(read_image(tmp_path / f"{name}.png"))[:, :, 0]
    assert (maps["torch"] != maps["ort_pt"]).mean() <= 1e-4
    assert len(np.unique(maps["torch"])) > 1  # a map with several classes, or the comparison says little
    assert (maps["ort_pt"] == maps["ort_onnx"]).all()


def test_an_onnx_file_without_the_project_metadata_is_refused_naming_it(tmp_path, exported):
    graph = onnx.load(str(exported[1]))
    del graph.metadata_props[:]
    onnx.save(graph, str(tmp_path / "bare.onnx"))
    with pytest.raises(InputError, match="bare.onnx: an ONNX model without aerialseg's metadata.*aerialseg export"):
        backends.OnnxModel.load((tmp_path / "bare.onnx").read_bytes(), tmp_path / "bare.onnx", threads=1)
    entry = graph.metadata_props.add()
    entry.key, entry.value = "aerialseg", json.dumps({"format": 1, "case": "x", "spec": {}})
    onnx.save(graph, str(tmp_path / "partial.onnx"))
    with pytest.raises(InputError, match="lacks patch_size, data, predict"):
        backends.OnnxModel.load((tmp_path / "partial.onnx").read_bytes(), tmp_path / "partial.onnx", threads=1)


def test_an_image_whose_bands_differ_from_the_models_is_refused(tmp_path, exported):
    write_png(tmp_path / "gray.png", np.zeros((64, 64), np.uint8))
    with pytest.raises(InputError, match="gray.png: 1 data band.*trained on images of 3"):
        prediction.map_images(_settings("auto"), exported[1],
                              [prediction.MapFiles(tmp_path / "gray.png", tmp_path / "m.png", tmp_path / "p.png")])


def test_exporting_a_corrupt_checkpoint_fails_cleanly(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(InputError, match="model.pt: cannot read this checkpoint"):
        export.export(tmp_path / "model.pt", tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_backend_choice(monkeypatch, tmp_path):
    monkeypatch.setattr(backends, "cuda_possible", lambda: False)
    assert backends.choose("auto", "auto", "m.pt") == "onnxruntime"
    assert backends.choose("auto", "cuda", "m.pt") == "torch"
    assert backends.choose("auto", "auto", "m.onnx") == "onnxruntime"
    with pytest.raises(ConfigError, match="onnxruntime runs on the CPU here"):
        backends.choose("auto", "cuda", "m.onnx")
    with pytest.raises(ConfigError, match="m.onnx: an ONNX file runs on ONNX Runtime only"):
        backends.choose("torch", "cpu", "m.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    assert backends.choose("auto", "cpu", "m.pt") == "torch"
    with pytest.raises(ConfigError, match="ONNX Runtime is not installed.*pip install onnxruntime"):
        backends.OnnxModel.load(b"", "m.onnx", threads=1)


def test_a_model_pt_is_exported_once_and_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(backends.CACHE_ENV, str(tmp_path / "cache"))
    model_pt = _checkpoint(tmp_path / "model.pt", seed=4)
    first = backends.onnx_bytes(model_pt, cache=backends.cache_dir())
    cached = list((tmp_path / "cache").glob("*.onnx"))
    assert [p.name for p in cached] == [f"{files.sha256(model_pt)}.onnx"]
    with monkeypatch.context() as patched:
        patched.setattr(export, "to_bytes", lambda *a, **k: pytest.fail("exported again"))
        assert backends.onnx_bytes(model_pt, cache=backends.cache_dir()) == first
    _checkpoint(model_pt, seed=5)  # a new model.pt at the same path is not served the old graph
    assert backends.onnx_bytes(model_pt, cache=backends.cache_dir()) != first
    assert len(list((tmp_path / "cache").glob("*.onnx"))) == 2
    backends.onnx_bytes(model_pt, cache=None)  # the workflow's jobs keep nothing outside results/
    assert len(list((tmp_path / "cache").glob("*.onnx"))) == 2


def test_the_console_command_maps_with_a_model_onnx_without_importing_torch(tmp_path, exported):
    write_png(tmp_path / "area.png", np.random.default_rng(5).integers(0, 256, (70, 90, 3), dtype=np.uint8))
    code = ("import sys; from aerialseg.cli import main; status = main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code, "predict", str(exported[1]), str(tmp_path / "area.png"),
                           "-o", str(tmp_path / "maps"), "--threads", "1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert np.asarray(read_image(tmp_path / "maps/area.png")).shape[:2] == (70, 90)


def test_the_console_command_exports(tmp_path):
    from aerialseg.cli import main

    model_pt = _checkpoint(tmp_path / "model.pt", seed=6)
    assert main(["export", str(model_pt), "-o", str(tmp_path / "out.onnx"), "--stride", "8"]) == 0
    assert json.loads(_props(tmp_path / "out.onnx")["aerialseg"])["predict"] == {"stride": 8, "blend": "mean"}


def test_the_console_command_records_the_studys_settings_for_an_option_not_given(tmp_path):
    from aerialseg.cli import main

    model_pt = _checkpoint(tmp_path / "model.pt", seed=6)
    (tmp_path / "prediction_settings.yaml").write_text("settings:\n  predict: {stride: 24, blend: gaussian}\n")
    assert main(["export", str(model_pt), "-o", str(tmp_path / "a.onnx"), "--blend", "mean"]) == 0
    assert main(["export", str(model_pt), "-o", str(tmp_path / "b.onnx")]) == 0
    assert json.loads(_props(tmp_path / "a.onnx")["aerialseg"])["predict"] == {"stride": 24, "blend": "mean"}
    assert json.loads(_props(tmp_path / "b.onnx")["aerialseg"])["predict"] == {"stride": 24, "blend": "gaussian"}


def test_folding_batch_norm_keeps_the_function():
    from aerialseg.model import ModelSpec, build, fold_batchnorm

    torch.manual_seed(7)
    net = build(ModelSpec(3, "scratch", decoder_channels=32)).eval()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.3, 0.3)
            module.running_var.uniform_(0.5, 2.0)
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        before = net(x)
        folded = fold_batchnorm(net)
        after = folded(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


def test_the_input_table_holds_exactly_what_torch_normalisation_computes(exported):
    from aerialseg.model import ModelSpec, normalize

    model = backends.OnnxModel.load(exported[1].read_bytes(), exported[1], threads=1)
    values = torch.arange(256, dtype=torch.uint8).view(1, 1, 1, 256).expand(1, 3, 1, 256)
    expected = normalize(values, ModelSpec(**model.meta["spec"]))[0, :, 0].numpy()
    np.testing.assert_array_equal(model.table, expected)


def test_an_int8_graph_keeps_the_metadata_and_nearly_every_class_id(tmp_path, exported):
    from aerialseg import quantize
    from aerialseg.cli import main

    rng = np.random.default_rng(11)
    scene = np.repeat(np.repeat(rng.integers(0, 256, (12, 12, 3)), 8, 0), 8, 1).astype(np.uint8)  # blocky
    write_png(tmp_path / "train.png", scene)
    out = tmp_path / "model_int8.onnx"
    assert main(["export", str(exported[1]), "-o", str(out), "--int8", "--calibration", str(tmp_path / "train.png"),
                 "--calibration-windows", "32"]) == 0
    props, source = _props(out), _props(exported[1])
    meta = json.loads(props["aerialseg"])
    assert meta["precision"] == "int8" and meta["calibration"] == {"windows": 32, "source": "train.png"}
    assert {k: v for k, v in meta.items() if k not in ("precision", "calibration")} == json.loads(source["aerialseg"])
    assert {k: v for k, v in props.items() if k != "aerialseg"} == {k: v for k, v in source.items() if k != "aerialseg"}
    assert any(node.op_type == "QuantizeLinear" for node in onnx.load(str(out)).graph.node)
    fp32, int8 = (backends.OnnxModel.load(path.read_bytes(), path, threads=1) for path in (exported[1], out))
    windows = quantize.calibration_windows(fp32, [tmp_path / "train.png"], 16, seed=3)
    agree = (fp32.outputs(windows).argmax(1) == int8.outputs(windows).argmax(1)).mean()
    assert agree > 0.9, f"int8 agrees with float32 in only {agree:.1%} of pixels"
    from aerialseg.jobs.model_info import describe

    assert "precision:   int8 (activations calibrated on 32 windows of train.png)" in describe(out)
    with pytest.raises(InputError, match="already an int8 graph"):
        quantize.export_int8(out, tmp_path / "again.onnx", [tmp_path / "train.png"])


def test_int8_calibration_refuses_missing_or_too_small_images(tmp_path, exported):
    from aerialseg import quantize

    with pytest.raises(InputError, match="nowhere.png: calibration image file does not exist"):
        quantize.export_int8(exported[1], tmp_path / "x.onnx", [tmp_path / "nowhere.png"])
    write_png(tmp_path / "small.png", np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(InputError, match="small.png: 20 x 20 px, smaller than the model's 32 px window"):
        quantize.export_int8(exported[1], tmp_path / "x.onnx", [tmp_path / "small.png"])
    assert not (tmp_path / "x.onnx").exists()


def test_a_batch_split_across_sessions_gives_what_one_session_gives(exported, monkeypatch):
    monkeypatch.setattr(backends, "available_cores", lambda: 3)
    one = backends.OnnxModel.load(exported[1].read_bytes(), exported[1], threads=1)
    three = backends.OnnxModel.load(exported[1].read_bytes(), exported[1], threads=3)
    assert (len(one.sessions), len(three.sessions)) == (1, 3) and "3 session(s) side by side" in three.describe()
    windows = np.random.default_rng(8).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)  # chunks of 16, 16, 8
    np.testing.assert_array_equal(three.outputs(windows), one.outputs(windows))


def test_read_ahead_hands_on_every_item_in_order_raises_the_threads_error_and_stops_with_its_caller():
    import threading

    made = []

    def items():
        for number in range(5):
            made.append(number)
            yield number

    assert list(host_mosaic.read_ahead(items())) == [0, 1, 2, 3, 4]

    def failing():
        yield 1
        raise InputError("image.tif: unreadable block")

    with pytest.raises(InputError, match="unreadable block"):
        list(host_mosaic.read_ahead(failing()))

    made.clear()
    ahead = host_mosaic.read_ahead(items())
    assert next(ahead) == 0
    ahead.close()  # the caller stops early: the thread ends, having made at most two items more
    assert made[-1] <= 2 and not any(t.name == "mosaic-read-ahead" for t in threading.enumerate())
