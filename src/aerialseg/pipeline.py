"""One function per workflow step, over the step's settings and its files.

A step receives the slice of the validated config that shapes its outputs
(`config.job_settings`: the rules pass it as ``params``, so that Snakemake reruns exactly the
jobs a change affects), merged with how it runs (`config.with_run_options`: device, threads),
and the paths of its inputs and outputs, which the rule gives. What a rule knows about a file
(the run it belongs to, its image, its patch size) arrives as an argument, never parsed back
out of a path. So every step can also be run from Python (tests, notebooks) without Snakemake.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from . import config as cfg
from . import demo, patches, stats, tables
from .class_ids import IGNORE_INDEX
from .config import Case, Run, layout
from .config.layout import geotiff_path, vectors_path
from .errors import ConfigError, DivergenceError, InputError, WeightsError, WriteError, first_line
from .inference import LoadedModel, classes, load_model, map_codes
from .io.labels import ignore_nodata, load_pair, lookup_table, read_label, size_mismatch
from .io.read import check_bands, data_bands, georeference, image_header, image_size, read_by_gdal, read_image, valid_mask
from .io.spec import DataSpec
from .io.write import Preview, colorize, write_png, write_polygons
from .startup import StartupClock
from .files import write_csv, write_json, write_markdown, write_text, write_yaml
from .metrics import confusion_matrix, mean_iou, per_class

log = logging.getLogger("aerialseg")


def setup_logging(path: str | Path | None) -> None:
    """Log to ``path`` (the rule's log file) and to stderr."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    logging.basicConfig(
        level=logging.INFO, handlers=handlers, force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.captureWarnings(True)


def run(step, log_path, *args, **kwargs) -> None:
    """Run one workflow step with logging; a known input problem ends the job with its
    message (no traceback), anything else is logged with its traceback and re-raised. The
    log file is closed when the step ends (a process may run several steps: tests, notebooks)."""
    setup_logging(log_path)
    try:
        step(*args, **kwargs)
    except (InputError, ConfigError, WeightsError, DivergenceError, WriteError) as error:
        log.error("%s", error)
        sys.exit(1)
    except Exception as error:  # unforeseen (CUDA out of memory, say): its type and message first, then the traceback
        log.exception("%s failed: %s: %s", step.__name__, type(error).__name__, first_line(error))
        raise
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            root.removeHandler(handler)
            handler.close()


def _start_model_job(device_name: str, threads: int):
    """The prologue of a job that runs the model: the heavy imports (timed), the CPU threads
    and the device (on a GPU, a slot). Returns the start-up clock and the device."""
    clock = StartupClock()
    import torch

    from . import device as devices
    from . import model  # noqa: F401  (segmentation-models-pytorch: timed as an import here)

    clock.mark("imports")
    torch.set_num_threads(threads)
    device = devices.resolve(device_name)
    clock.mark("device")
    return clock, device


# --- inputs -------------------------------------------------------------------------------


def demo_scene(image_path, label_path, size: int, seed: int) -> None:
    """Render the synthetic scene and write its image and colour label as PNG."""
    start = time.perf_counter()
    image, label = demo.render_scene(size=size, seed=seed)
    write_png(image_path, image)
    write_png(label_path, label)
    log.info("demo scene %d px (seed %d) written in %.1f s", size, seed, time.perf_counter() - start)


def check_inputs(config: dict, producible: Sequence[str] = ()) -> list[str]:
    """Check what can be checked before any job runs, from file headers only: the label
    palette, image and label sizes, the bands asked for, that every patch size fits, that the
    validation split leaves patches on both sides, and that the images to map have the
    training images' bands. Files in ``producible`` (the demo scene) have the header the
    demo_scene rule will write. Returns warnings: images to map whose CRS or pixel size differ
    from the training tiles'."""
    spec = DataSpec.from_config(config)
    lookup_table(spec, source="config")
    largest = max(config["experiment"]["patch_sizes"])
    headers = {}
    for image in cfg.IMAGES:
        for tile in cfg.tiles(config, image):
            height, width, bands = headers[tile.image] = _header(tile.image, config, producible)
            label_shape = _header(tile.label, config, producible)[:2]
            if (height, width) != label_shape:
                raise InputError(size_mismatch(tile.image, (height, width), tile.label, label_shape))
            _check_patch_fits(tile.image, (height, width), largest)
            check_bands(tile.image, spec.bands, bands)
    _check_split(config, [headers[tile.image][:2] for tile in cfg.tiles(config, "train")])
    return _check_like_training(config, producible)


def _check_like_training(config: dict, producible: Sequence[str]) -> list[str]:
    """Every other image (the other training tiles, the test tiles, the images to map) must
    have the data bands of the first training tile (alpha bands aside, which mark no-data);
    a CRS or pixel size that differs from its is worth a warning. The images to map must also
    be at least as large as the largest patch."""
    first = cfg.tiles(config, "train")[0]
    bands = _data_bands(first.image, producible)
    where = georeference(first.image) if first.image not in producible else None
    others = [(tile.image, "") for image in cfg.IMAGES for tile in cfg.tiles(config, image)[image == "train":]]
    others += [(tile.image, " to map (data.predict)") for tile in cfg.maps(config)]
    warnings = []
    for path, role in others:
        count = _data_bands(path, producible)
        if count != bands:
            raise InputError(f"{path}: the image{role} has {count} data band(s), the training images {bands} "
                             f"({first.image}): one model cannot read both")
        if role:
            _check_patch_fits(path, image_size(path), max(config["experiment"]["patch_sizes"]))
        other = georeference(path) if path not in producible else None
        if where is not None and other is not None:
            for what, theirs, ours in (("CRS", other.crs, where.crs), ("pixel size", _pixel_size(other), _pixel_size(where))):
                if theirs != ours:
                    warnings.append(f"{path}: its {what} is {theirs}, the training tiles' {ours} ({first.image}); "
                                    "it is used anyway, but a model sees pixels, not metres")
    return warnings


def _data_bands(path, producible: Sequence[str]) -> int:
    return 3 if path in producible else data_bands(path)


def _pixel_size(where) -> tuple[float, float]:
    return round(abs(where.transform.a), 9), round(abs(where.transform.e), 9)


def _header(path, config: dict, producible: Sequence[str]) -> tuple[int, int, int]:
    """(height, width, bands) of an input file, or of the demo scene the workflow will render."""
    if path in producible:
        size = config["demo"]["size"]
        return size, size, 3
    return image_header(path)


def _check_split(config: dict, shapes: Sequence[tuple[int, int]]) -> None:
    """The random split of every patch size leaves at least one validation patch and two
    training patches (BatchNorm needs a batch of two). The blocks and tiles splits are checked
    by the patches job, which draws them."""
    experiment = config["experiment"]
    if experiment["split"] != "random":
        return
    fraction = experiment["val_fraction"]
    for size in experiment["patch_sizes"]:
        stride = cfg.training_stride(config, size)
        n = sum(len(patches.window_starts(h, size, stride)) * len(patches.window_starts(w, size, stride)) for h, w in shapes)
        n_val = int(round(n * fraction))
        if n_val < 1 or n - n_val < MIN_TRAIN_PATCHES:
            where = (f"{shapes[0][1]} x {shapes[0][0]} px training image" if len(shapes) == 1
                     else f"{len(shapes)} training tiles")
            raise ConfigError(
                f"experiment.val_fraction: {fraction} splits the {n} patches of {size} px (stride {stride}) of the "
                f"{where} into {n - n_val} for training and {n_val} for validation; "
                f"training needs at least {MIN_TRAIN_PATCHES} and validation at least 1: choose a fraction nearer "
                "0.2, or a smaller stride or patch size"
            )


MIN_TRAIN_PATCHES = 2
"""A training batch of one never reaches BatchNorm, so at least two training patches."""


def _check_patch_fits(path, shape: tuple[int, int], largest: int) -> None:
    height, width = shape
    if min(height, width) < largest:
        raise InputError(
            f"{path}: image is {width} x {height} px, smaller than the largest patch size "
            f"{largest} px (experiment.patch_sizes)"
        )


def class_stats(settings: dict, tiles: Mapping[str, Sequence[cfg.Tile]], stats_csv, weights_json,
                tiles_csv=None) -> None:
    """Class pixel counts and shares of each split (``tiles``: split -> its tiles, as
    `config.split_tiles` gives them), over all its tiles; class weights over all training
    tiles; with ``tiles_csv`` the counts of every tile too. The labels are read, and the
    images only where they can have no-data pixels, which are not counted."""
    names = cfg.class_names(settings)
    spec = DataSpec.from_config(settings)
    counts, per_tile = {}, {}
    for image, split in tiles.items():
        for tile in split:
            ids = read_label(tile.label, spec)
            ignore_nodata(ids, valid_mask(tile.image, spec, spec.nodata), tile.image)
            per_tile[(image, tile.name)] = stats.class_counts(ids, len(names))
            log.info("%s %s: %d labelled pixels, %d ignored", image, tile.name, per_tile[(image, tile.name)].sum(),
                     ids.size - per_tile[(image, tile.name)].sum())
        counts[image] = sum(per_tile[(image, tile.name)] for tile in split)
    labels = {image: [tile.label for tile in split] for image, split in tiles.items()}
    unweighted = settings["train"]["weighting"] == "none"
    source = ", ".join(map(str, labels["train"]))
    try:
        weights = stats.class_weights(counts["train"], names, source=source, allow_missing=unweighted)
    except ValueError as error:  # a class without pixels: an input problem, reported without traceback
        raise InputError(str(error)) from None
    for name in (n for n, w in weights.items() if w is None):
        log.warning("class %r has no pixels in the training image: the model cannot learn it, and its weight "
                    "is undefined (null in %s; train.weighting is none, so the loss does not use it)", name, weights_json)
    write_csv(stats.class_table(counts, names), stats_csv)
    write_json(weights, weights_json)
    if tiles_csv:
        write_csv(stats.tile_table(per_tile, names), tiles_csv)
    log.info("class weights: %s", weights)


def patch_index(settings: dict, size: int, images_of: Mapping[str, str | Path], out_csv, tiled: bool = False) -> None:
    """The patch grid of the training tiles (``images_of``: tile -> image file) for one patch
    size, without patches wholly in no-data, split into train and val; ``tiled`` adds the
    tile of each patch (a tile column)."""
    experiment = settings["experiment"]
    shapes = {tile: image_size(path) for tile, path in images_of.items()}
    spec = DataSpec.from_config(settings)
    valid = {tile: valid_mask(path, spec, spec.nodata) for tile, path in images_of.items()}
    try:
        index = patches.patch_index_of_tiles(
            shapes, size, cfg.training_stride(settings, size), experiment["val_fraction"], experiment["seed"],
            split=experiment["split"], block_size=experiment["block_size"],
            valid={tile: mask for tile, mask in valid.items() if mask is not None},
        )
    except ValueError as error:  # a split that the tiles cannot give: the message names the keys
        raise ConfigError(f"experiment.split {experiment['split']!r}, {size} px patches: {error}") from None
    if (index.split == "train").sum() < MIN_TRAIN_PATCHES:
        raise ConfigError(
            f"experiment.split {experiment['split']!r}: only {(index.split == 'train').sum()} training patch(es) of "
            f"{size} px are left; training needs at least {MIN_TRAIN_PATCHES} (use smaller blocks or a smaller stride)")
    write_csv(index if tiled else index.drop(columns="tile"), out_csv)
    log.info("p%d: %d patches (%d train, %d val)", size, len(index), (index.split == "train").sum(), (index.split == "val").sum())


# --- training -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainFiles:
    """A training job's files: the training tiles (`config.Tile`: image and label), the patch
    index and the class weights it reads; the checkpoints, history and settings record it
    writes; where it keeps its resume state (outside the outputs, which Snakemake deletes when
    a job fails)."""

    tiles: Sequence[cfg.Tile]
    patches: str | Path
    weights: str | Path
    model: str | Path
    history: str | Path
    last: str | Path | None = None
    settings: str | Path | None = None
    resume: str | Path | None = None
    reference_patches: str | Path | None = None  # the smallest patch size's index, for a step or pixel budget


def train_case(settings: dict, run: Run, files: TrainFiles, threads: int = 1) -> None:
    """Train one run (a case, with its repeat's seed) on all training tiles; write its best
    checkpoint, its last one, the per-epoch history and the settings that made them (`files`).

    With ``files.resume`` the training state is kept there, so a killed job continues where
    it stopped when run again; it is removed once the outputs exist. A run that diverges stops
    with an error naming the run and the epoch, and writes no model.
    """
    clock, device = _start_model_job(settings["train"]["device"], threads)
    from . import model as models
    from . import train

    seed = cfg.repeat_seed(settings, run.repeat)
    log.info("case %s, repeat %d (seed %d), on %s (%d CPU threads)", run.case.name, run.repeat, seed, device, threads)
    data = _training_data(settings, files, run.case.size)
    clock.mark("data")
    train.seed_everything(seed)
    spec = _model_spec(settings, run.case.init, len(cfg.class_names(settings)), data.image.shape[2])
    net = models.build(spec, settings["model"]["weights"])
    clock.mark("model")
    clock.report("the first epoch")
    record = _settings_record(settings, run, seed)
    try:
        history, best_state, best_epoch = train.fit(net, spec, data, _train_settings(settings, seed, data, files),
                                                    device, resume_path=files.resume,
                                                    fingerprint=_resume_key(record, files))
    except DivergenceError as error:
        raise DivergenceError(f"case {run.label}: {error}") from None
    _write_training(net, spec, history, best_state, best_epoch, settings, record, files)


def _training_data(settings: dict, files: TrainFiles, size: int):
    """The training tiles side by side on one canvas (one tile: the tile itself), the patch
    index in canvas coordinates, and the loss's class weights."""
    from .train import TrainingData

    image, ids, offsets = read_tiles(settings, files.tiles)
    for tile in files.tiles:
        _check_patch_fits(tile.image, image_size(tile.image), size)
    index = pd.read_csv(files.patches, dtype={"tile": str}, keep_default_na=False)  # a tile may be named "0001"
    if "tile" in index:  # tiles: a patch's column on the canvas is its column in its tile plus the tile's offset
        index = index.assign(col=index.col + index.tile.astype(str).map(offsets))
    names = cfg.class_names(settings)
    weights = stats.loss_weights(json.loads(Path(files.weights).read_text()), names, settings["train"]["weighting"])
    return TrainingData(image, ids, index, size, weights)


def read_tiles(settings: dict, tiles: Sequence[cfg.Tile]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """All ``tiles`` (image and label) side by side on one canvas, as tall as the tallest, the
    rest filled with zeros and ignored labels: (image (H, W, C) uint8, class ids (H, W), the
    column where each tile starts). One tile is returned as it is read. The canvas needs
    (bands + 1) bytes per pixel of all tiles together, and each tile is copied in as it is read."""
    if len(tiles) == 1:
        image, ids = load_pair(tiles[0].image, tiles[0].label, DataSpec.from_config(settings))
        return image, ids, {tiles[0].name: 0}
    shapes = [image_size(tile.image) for tile in tiles]
    height, width = max(h for h, _ in shapes), sum(w for _, w in shapes)
    bands = len(settings["data"]["bands"])
    canvas, canvas_ids = np.zeros((height, width, bands), np.uint8), np.full((height, width), IGNORE_INDEX, np.uint8)
    offsets, col = {}, 0
    for tile, (h, w) in zip(tiles, shapes):
        image, ids = load_pair(tile.image, tile.label, DataSpec.from_config(settings))
        canvas[:h, col : col + w], canvas_ids[:h, col : col + w] = image, ids
        offsets[tile.name], col = col, col + w
    log.info("%d training tiles on a %d x %d px canvas (%.0f MB)", len(tiles), width, height,
             canvas.nbytes / 1e6 + canvas_ids.nbytes / 1e6)
    return canvas, canvas_ids, offsets


def _train_settings(settings: dict, seed: int, data, files: TrainFiles):
    from .train import TrainSettings

    t = settings["train"]
    return TrainSettings(
        epochs=t["epochs"], batch_size=t["batch_size"], lr=t["lr"], seed=seed, optimizer=t["optimizer"],
        weight_decay=t["weight_decay"], augment=t["augment"], capture=t["capture"], resume_seconds=t["resume_seconds"],
        budget_steps=_budget_steps(settings, data, files), precision=t["precision"], memory_format=t["memory_format"],
    )


def _budget_steps(settings: dict, data, files: TrainFiles) -> int | None:
    """The optimiser steps of a step or pixel budget (`patches.budget_steps`); None for epochs."""
    t = settings["train"]
    if t["budget"] == "epochs":
        return None
    n_train = int((data.index.split == "train").sum())
    reference = pd.read_csv(files.reference_patches)
    reference_size = settings["train"]["budget_size"]
    steps = patches.budget_steps(t["budget"], t["epochs"], t["batch_size"], data.size, n_train, reference_size,
                                 int((reference.split == "train").sum()))
    log.info("budget: %s of the %d px patches in %d epochs: %d optimiser steps", t["budget"], reference_size,
             t["epochs"], steps)
    return steps


def _settings_record(settings: dict, run: Run, seed: int) -> dict:
    """What made a run's model: its case, repeat and seed, the settings that shape it, and
    their fingerprint (`config.fingerprint` of ``settings``). How the job runs (device,
    threads) is left out: it does not define the result."""
    shaping = cfg.without_run_options(settings, "train")
    return {"case": run.case.name, "repeat": run.repeat, "seed": seed, "fingerprint": cfg.fingerprint(shaping),
            "settings": shaping}


def _resume_key(record: dict, files: TrainFiles) -> str:
    """What a saved training state must match to be resumed: the run's record and its input
    files (the patch indexes and class weights by content, the tiles by path, size and time)."""
    indexes = [files.patches] + ([files.reference_patches] if files.reference_patches else [])
    inputs = [_file_id(path, content=True) for path in (*indexes, files.weights)]
    inputs += [_file_id(path) for tile in files.tiles for path in (tile.image, tile.label)]
    return cfg.fingerprint({"record": record, "inputs": inputs})


def _file_id(path, content: bool = False) -> str:
    """A file by its content (small files), or by its path, size and modification time."""
    path = Path(path)
    if content:
        import hashlib

        return hashlib.sha256(path.read_bytes()).hexdigest()
    status = path.stat()
    return f"{path}:{status.st_size}:{status.st_mtime_ns}"


def _write_training(net, spec, history: pd.DataFrame, best_state: dict, best_epoch: int, settings: dict,
                    record: dict, files: TrainFiles) -> None:
    from . import model as models

    data = {key: settings["data"][key] for key in cfg.LABEL_KEYS + cfg.IMAGE_KEYS}
    data["image_bands"] = data_bands(files.tiles[0].image)
    extra = dict(case=record["case"], repeat=record["repeat"], patch_size=Case.parse(record["case"]).size, data=data,
                 fingerprint=record["fingerprint"], resolution=_resolution(files.tiles[0].image))
    if files.last:
        models.save_checkpoint(files.last, net, spec, epoch=int(history.epoch.iloc[-1]), **extra)
    net.load_state_dict(best_state)
    models.save_checkpoint(files.model, net, spec, epoch=best_epoch, **extra)
    write_csv(history, files.history)
    if files.settings:
        write_yaml(record, files.settings, "What made this run's model.pt, last.pt and history.csv (aerialseg).")
    if files.resume:
        Path(files.resume).unlink(missing_ok=True)
    log.info("kept epoch %d of %d (best validation mIoU)", best_epoch, len(history))


def _resolution(image_path) -> float | None:
    """The pixel size in metres of a training image in a projected CRS in metres, else None
    (an exported model tells GIS software the resolution it was trained at)."""
    where = georeference(image_path)
    if where is None or where.crs is None or not where.crs.is_projected:
        return None
    try:
        metres = where.crs.linear_units_factor[1]
    except Exception:  # a CRS whose units GDAL cannot name
        return None
    return round(abs(where.transform.a) * metres, 6)


def _model_spec(settings: dict, init: str, n_classes: int, in_channels: int):
    from .model import ModelSpec

    m = settings["model"]
    return ModelSpec(
        n_classes=n_classes, init=init, encoder=m["encoder"], encoder_depth=m["encoder_depth"],
        decoder_channels=m["decoder_channels"], in_channels=in_channels, architecture=m["architecture"],
    )


# --- prediction ---------------------------------------------------------------------------


def predict_images(settings: dict, model_path, image_paths: Sequence, ids_outs: Sequence, color_outs: Sequence,
                   threads: int | None = None, record: tuple[Run, str | Path] | None = None) -> None:
    """Predict whole images with one case's model, each as a mosaic of overlapping windows;
    one job predicts them all, so the model and the device are set up once. Each image gets
    its class ids and their colours as PNG; a georeferenced one also ``prediction.tif``, a
    Cloud-Optimised GeoTIFF written band by band (`geotiff_path`), and with
    ``predict.vectors`` its polygons, ``prediction.gpkg``. What the model reads (bands, value
    range, no-data, classes, patch size) comes from the checkpoint; how to predict from
    ``predict.*`` (`mosaic.MosaicOptions`). ``record`` is the run and where to write the
    settings that made its predictions (``prediction_settings.yaml``)."""
    model = load_model(settings, model_path, threads, len(image_paths))
    colors, _ = classes(model.checkpoint)
    for image_path, ids_out, color_out in zip(image_paths, ids_outs, color_outs, strict=True):
        with model.open(image_path) as image:
            ids = np.empty(image.shape, dtype=np.uint8)
            where = georeference(image_path)
            geotiff = model.map_writer(geotiff_path(ids_out), image, where) if where is not None else None
            try:
                for top, block in model.iter_ids(image):
                    ids[top : top + len(block)] = block
                    if geotiff is not None:
                        geotiff.write(top, block)
                write_png(ids_out, ids)
                write_png(color_out, colorize(ids, colors))
            except BaseException:  # a killed job, a full disk: no half-written GeoTIFF is left behind
                if geotiff is not None:
                    geotiff.abort()
                raise
        if geotiff is not None:
            geotiff.close()
            log.info("%s: georeferenced (%s); wrote %s", image_path, where.crs, geotiff_path(ids_out))
            _write_vectors(settings, model.checkpoint, geotiff_path(ids_out))
        elif read_by_gdal(image_path):
            log.info("%s: a raster without a CRS or geotransform; the prediction is written as PNG only", image_path)
    if record is not None:
        run, path = record
        shaping = cfg.without_run_options(settings, "predict")
        write_yaml({"case": run.case.name, "repeat": run.repeat, "model_settings": model.checkpoint.get("fingerprint"),
                    "fingerprint": cfg.fingerprint(shaping), "settings": shaping}, path,
                   "What made this run's predictions from its model.pt (aerialseg).")
    log.info("predicted %d image(s) in all", len(image_paths))


def _write_vectors(settings: dict, checkpoint: dict, map_path) -> None:
    """The polygons of a map, named by class and keyed by the values the map holds."""
    if not settings["predict"].get("vectors"):
        return
    _, names = classes(checkpoint)
    values, _ = map_codes(checkpoint)
    count = write_polygons(map_path, vectors_path(map_path), names, settings["predict"].get("min_area", 0),
                                   values=values)
    log.info("%s: %d polygons (regions under %d px merged) in %s", map_path, count,
             settings["predict"].get("min_area", 0), vectors_path(map_path))


# --- maps of unlabelled images ------------------------------------------------------------


def map_files(image_path, out_dir) -> tuple[Path, Path]:
    """Where the map of an image goes in ``out_dir`` (`layout.map_files`): ``{name}.tif`` (a
    Cloud-Optimised GeoTIFF in the image's CRS and transform) for a georeferenced image, else
    ``{name}.png`` (class ids); and its coloured preview ``{name}_preview.png``. ``name`` is
    the image file's stem. With ``predict.vectors`` a georeferenced map also gets
    ``{name}.gpkg`` (`layout.vectors_path`)."""
    suffix = layout.GEOTIFF if georeference(image_path) is not None else layout.PNG
    return layout.map_files(out_dir, Path(image_path).stem, suffix)


def map_images(settings: dict, model_path, image_paths: Sequence, map_outs: Sequence, preview_outs: Sequence,
               threads: int | None = None, onnx_cache: Path | None = None) -> None:
    """Map unlabelled images with a trained model: each map (class ids, as `map_files` names
    it) and a coloured preview. A georeferenced image is read and its map written band by band
    (a Cloud-Optimised GeoTIFF), so memory does not grow with the image; a PNG or JPEG, which
    is read whole, gets a PNG map. The model's checkpoint says what it reads; the images must
    have the band count of its training images."""
    model = load_model(settings, model_path, threads, len(image_paths), onnx_cache)
    for image_path, map_out, preview_out in zip(image_paths, map_outs, preview_outs, strict=True):
        _check_map_input(model.checkpoint, image_path, model_path)
        map_image(model, image_path, map_out, preview_out)
        if Path(map_out).suffix == layout.GEOTIFF:  # polygons need a CRS
            _write_vectors(settings, model.checkpoint, map_out)


def map_image(model: LoadedModel, image_path, map_out, preview_out) -> None:
    """One map (`map_images`), block by block: a GeoTIFF for a georeferenced image, never held
    whole; a PNG for any other."""
    colors, _ = classes(model.checkpoint)
    where = georeference(image_path)
    if (Path(map_out).suffix == layout.GEOTIFF) != (where is not None):
        raise InputError(f"{image_path}: {'' if where else 'not '}georeferenced, so its map is a "
                         f"{'GeoTIFF' if where else 'PNG'}, not {map_out}")
    with model.open(image_path) as image:
        preview = Preview(image.height, image.width, colors)
        whole = np.empty(image.shape, dtype=np.uint8) if where is None else None
        writer = model.map_writer(map_out, image, where) if where is not None else None
        try:
            for top, block in model.iter_ids(image):
                preview.write(top, block)
                if writer is not None:
                    writer.write(top, block)
                else:
                    whole[top : top + len(block)] = block
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
    if writer is not None:
        writer.close()
    else:
        write_png(map_out, whole)
    preview.save(preview_out)
    log.info("%s: mapped to %s (%s), preview %s", image_path, map_out, where.crs if where else "no georeference",
             preview_out)


def best_case(training_csv, out_yaml) -> None:
    """The case with the best validation mIoU in the training table (the mean over repeats;
    ties go to the first, `metrics.best_index`): the one that maps new imagery by default."""
    from .metrics import best_index

    training = pd.read_csv(training_csv)
    row = training.iloc[best_index(training["val_miou"].to_numpy())]
    write_yaml({"case": str(row["case"]), "val_miou": float(row["val_miou"])}, out_yaml,
               f"The case with the best validation mIoU ({layout.SUMMARY}/training.csv): it maps data.predict.")
    log.info("best case by validation mIoU: %s (%.4f)", row["case"], row["val_miou"])


def _check_map_input(checkpoint: dict, image_path, model_path) -> None:
    height, width = image_size(image_path)
    bands, trained = data_bands(image_path), checkpoint["data"]["image_bands"]
    if bands != trained:
        raise InputError(f"{image_path}: {bands} data band(s), but {model_path} was trained on images of {trained}: "
                         "the model cannot read it")
    if min(height, width) < checkpoint["patch_size"]:
        raise InputError(f"{image_path}: {width} x {height} px, smaller than the model's {checkpoint['patch_size']} px windows")


# --- evaluation and summaries -------------------------------------------------------------


def evaluate(settings: dict, run: Run, image: str, image_path, label_path, prediction_path, metrics_out,
             confusion_out, mosaic_out=None, tile: str = "") -> None:
    """Per-class scores and the confusion matrix of one prediction against its label, and
    the mosaic figure (image | ground truth | prediction | errors) with the mIoU; ``tile``
    names the tile in the figure's title when the split has several."""
    names = cfg.class_names(settings)
    image_arr, truth = load_pair(image_path, label_path, DataSpec.from_config(settings))
    prediction = read_image(prediction_path)[:, :, 0]
    cm = confusion_matrix(truth, prediction, len(names))
    _write_scores(cm, names, metrics_out, confusion_out)
    if mosaic_out:
        from . import figures

        classes = list(zip(names, cfg.class_colors(settings)))
        title = f"{run.label}, {image} {f'tile {tile}' if tile else 'image'}: mIoU {mean_iou(cm):.3f}"
        shown = image_arr[:, :, :3] if image_arr.shape[2] >= 3 else np.repeat(image_arr[:, :, :1], 3, axis=2)
        figures.save(figures.mosaic_panel(shown, truth, prediction, classes, title), mosaic_out)


def _write_scores(cm: np.ndarray, names: Sequence[str], metrics_out, confusion_out) -> None:
    write_csv(per_class(cm, names), metrics_out)
    write_csv(pd.DataFrame(cm, index=names, columns=names).rename_axis("truth").reset_index(), confusion_out)


def pool(settings: dict, confusion_paths: Sequence, metrics_out, confusion_out) -> None:
    """The scores of a split's tiles pooled: one confusion matrix, the sum of theirs, and its
    per-class scores (what `evaluate` writes for a split of one image)."""
    cm = sum(read_confusion(path) for path in confusion_paths)
    _write_scores(cm, cfg.class_names(settings), metrics_out, confusion_out)
    log.info("%d tiles pooled: %d pixels counted, mIoU %.4f", len(confusion_paths), cm.sum(), mean_iou(cm))


def read_confusion(path) -> np.ndarray:
    return pd.read_csv(path, index_col=0).to_numpy()


def summarize(settings: dict, histories: Mapping[Run, str | Path], confusions: Mapping[tuple[Run, str], str | Path],
              class_stats_csv, out: Mapping[str, str | Path],
              tile_confusions: Mapping[tuple[Run, str, str], str | Path] | None = None) -> None:
    """Write the comparison tables (CSV and Markdown), every single run, the study's Tables
    1-3 in its own layout, the scores of every tile, and the settings that shaped them.

    ``histories`` maps each run to its ``history.csv``, ``confusions`` each (run, image) to its
    (pooled) ``confusion.csv``, ``tile_confusions`` each (run, image, tile) to the tile's.
    ``out`` maps training, training_md, evaluation, evaluation_md, per_class, runs,
    study_tables, settings and tiles to paths. ``settings`` holds every setting that shapes a
    result (`config.result_settings`): its fingerprint ends each Markdown table."""
    history = {run: pd.read_csv(path) for run, path in histories.items()}
    confusion = {key: read_confusion(path) for key, path in confusions.items()}
    if tile_confusions is not None and out.get("tiles"):
        tiles = {key: read_confusion(path) for key, path in tile_confusions.items()}
        write_csv(tables.tiles_table(tiles, {run.repeat: cfg.repeat_seed(settings, run.repeat) for run in history}),
                  out["tiles"])
    training = tables.training_table(history)
    evaluation = tables.evaluation_table(confusion)
    name = cfg.fingerprint(settings)
    footer = f"\nSettings {name}: every setting that shaped these results is in {layout.SUMMARY}/settings.yaml.\n"
    write_csv(training, out["training"])
    write_markdown(training, out["training_md"], footer=footer)
    write_csv(evaluation, out["evaluation"])
    write_markdown(evaluation, out["evaluation_md"], footer=footer)
    write_csv(tables.per_class_table(confusion, cfg.class_names(settings)), out["per_class"])
    seeds = {run.repeat: cfg.repeat_seed(settings, run.repeat) for run in history}
    write_csv(tables.runs_table(history, confusion, seeds), out["runs"])
    write_text(tables.study_tables(pd.read_csv(class_stats_csv), training, evaluation) + footer, out["study_tables"])
    write_yaml({"fingerprint": name, "settings": settings}, out["settings"],
               "Every setting that shaped the results in results/ (aerialseg); the tables end with its fingerprint.")


def conclude(settings: dict, runs_csv, patch_csvs: Mapping[int, str | Path], markdown_out, html_out) -> None:
    """Check the study's three conclusions against every run (see `aerialseg.conclusions`);
    ``patch_csvs`` maps each patch size to its patch index."""
    from . import conclusions

    experiment = settings["experiment"]
    overlapping = any(cfg.training_stride(settings, size) < size for size in experiment["patch_sizes"])
    steps = {size: patches.steps_per_epoch(int((pd.read_csv(path)["split"] == "train").sum()), settings["train"]["batch_size"])
             for size, path in patch_csvs.items()}
    found, blocks = conclusions.document(pd.read_csv(runs_csv), experiment["split"], overlapping=overlapping, steps=steps,
                                         budget=settings["train"]["budget"], epochs=settings["train"]["epochs"])
    write_text(conclusions.to_markdown(blocks), markdown_out)
    write_text(conclusions.to_html(blocks), html_out)
    for number, finding in enumerate(found, 1):
        log.info("conclusion %d (%s): %s", number, finding.claim, finding.verdict)


def figure_curves(run: Run, history_path, out) -> None:
    from . import figures

    history = pd.read_csv(history_path)
    figures.save(figures.training_curves(history, f"{run.label}: training curves"), out)


def figure_confusions(settings: dict, image: str, confusions: Mapping[Case, str | Path], out) -> None:
    """The row-normalised confusion matrices of the cases (``confusions``: case -> file) on one image."""
    from . import figures

    matrices = {case.name: read_confusion(path) for case, path in confusions.items()}
    title = f"{image} image: row-normalised confusion matrices"
    figures.save(figures.confusion_grid(matrices, cfg.class_names(settings), title), out)


def figure_learning(histories: Mapping[Run, str | Path], out) -> None:
    """Validation mIoU of every run against its optimiser steps and its training pixels."""
    from . import figures

    figures.save(figures.learning_curves({run: pd.read_csv(path) for run, path in histories.items()}), out)


def figure_summary(settings: dict, evaluation_csv, out) -> None:
    from . import figures

    metrics = tuple(settings["figures"]["metrics"])
    figures.save(figures.metric_vs_patch_size(pd.read_csv(evaluation_csv), metrics), out)
