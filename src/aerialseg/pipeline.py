"""One function per workflow step, over paths and the validated config.

The Snakemake scripts in ``scripts/`` only unpack ``snakemake.input/output`` and call these,
so every step can also be run from Python (tests, notebooks) without Snakemake.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import config as cfg
from . import demo, images, patches, stats, tables
from .config import Case
from .files import write_csv, write_json, write_markdown, write_text
from .errors import ConfigError, DivergenceError, InputError, WeightsError, WriteError
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
    except Exception:
        log.exception("%s failed", step.__name__)
        raise
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            root.removeHandler(handler)
            handler.close()


class StartupClock:
    """Times what a job spends before its real work: from the process's start (Python, the
    Snakemake script wrapper) to the step function, then each phase marked in it."""

    def __init__(self):
        self.phases = [("launch", seconds_since_process_start())]
        self.last = time.perf_counter()

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases.append((phase, now - self.last))
        self.last = now

    def report(self, before: str) -> None:
        total = sum(seconds for _, seconds in self.phases)
        log.info("start-up: %.1f s before %s (%s)", total, before,
                 ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in self.phases))


def seconds_since_process_start() -> float:
    """How long this process has been running (NaN where the OS does not say)."""
    try:
        import psutil

        return time.time() - psutil.Process().create_time()
    except Exception:  # psutil missing or the OS unsupported: the figure is only informative
        return float("nan")


def demo_scene(image_path, label_path, size: int, seed: int) -> None:
    """Render the synthetic scene and write its image and colour label as PNG."""
    start = time.perf_counter()
    image, label = demo.render_scene(size=size, seed=seed)
    images.write_png(image_path, image)
    images.write_png(label_path, label)
    log.info("demo scene %d px (seed %d) written in %.1f s", size, seed, time.perf_counter() - start)


def check_inputs(config: dict, producible: Sequence[str] = ()) -> None:
    """Check what can be checked before any job runs, from file headers only: the label
    palette, image and label sizes, the bands asked for, that every patch size fits and that
    the validation split leaves patches on both sides. Files in ``producible`` (the demo
    scene) have the header the demo_scene rule will write."""
    spec = images.DataSpec.from_config(config)
    images.lookup_table(spec, source="config")
    largest = max(config["experiment"]["patch_sizes"])
    headers = {}
    for image in cfg.IMAGES:
        paths = config["data"][image]
        height, width, bands = headers[image] = _header(paths["image"], config, producible)
        label_shape = _header(paths["label"], config, producible)[:2]
        if (height, width) != label_shape:
            raise InputError(images.size_mismatch(paths["image"], (height, width), paths["label"], label_shape))
        _check_patch_fits(paths["image"], (height, width), largest)
        images.check_bands(paths["image"], spec.bands, bands)
    _check_split(config, *headers["train"][:2])


def _header(path, config: dict, producible: Sequence[str]) -> tuple[int, int, int]:
    """(height, width, bands) of an input file, or of the demo scene the workflow will render."""
    if path in producible:
        size = config["demo"]["size"]
        return size, size, 3
    return images.image_header(path)


def _check_split(config: dict, height: int, width: int) -> None:
    """The random split of every patch size leaves at least one validation patch and two
    training patches (BatchNorm needs a batch of two). The blocks split is checked by the
    patches job, which draws its blocks."""
    experiment = config["experiment"]
    if experiment["split"] != "random":
        return
    fraction = experiment["val_fraction"]
    for size in experiment["patch_sizes"]:
        stride = cfg.training_stride(config, size)
        n = len(patches.window_starts(height, size, stride)) * len(patches.window_starts(width, size, stride))
        n_val = int(round(n * fraction))
        if n_val < 1 or n - n_val < MIN_TRAIN_PATCHES:
            raise ConfigError(
                f"experiment.val_fraction: {fraction} splits the {n} patches of {size} px (stride {stride}) of the "
                f"{width} x {height} px training image into {n - n_val} for training and {n_val} for validation; "
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


def load_labelled(config: dict, image: str) -> tuple[np.ndarray, np.ndarray]:
    """The configured image (train or test) and its decoded class ids."""
    paths = config["data"][image]
    image_arr, ids = images.load_pair(paths["image"], paths["label"], images.DataSpec.from_config(config))
    _check_patch_fits(paths["image"], ids.shape, max(config["experiment"]["patch_sizes"]))
    return image_arr, ids


def class_stats(config: dict, stats_csv, weights_json) -> None:
    """Class pixel counts and shares of both images; class weights of the training image."""
    names = cfg.class_names(config)
    counts = {}
    for image in cfg.IMAGES:
        _, ids = load_labelled(config, image)
        counts[image] = stats.class_counts(ids, len(names))
        log.info("%s: %d labelled pixels, %d ignored", image, counts[image].sum(), ids.size - counts[image].sum())
    unweighted = config["train"]["weighting"] == "none"
    try:
        weights = stats.class_weights(counts["train"], names, source=config["data"]["train"]["label"],
                                      allow_missing=unweighted)
    except ValueError as error:  # a class without pixels: an input problem, reported without traceback
        raise InputError(str(error)) from None
    for name in (n for n, w in weights.items() if w is None):
        log.warning("class %r has no pixels in the training image: the model cannot learn it, and its weight "
                    "is undefined (null in %s; train.weighting is none, so the loss does not use it)", name, weights_json)
    write_csv(stats.class_table(counts, names), stats_csv)
    write_json(weights, weights_json)
    log.info("class weights: %s", weights)


def patch_index(config: dict, size: int, out_csv) -> None:
    """The patch grid of the training image for one patch size, split into train and val."""
    experiment = config["experiment"]
    height, width = images.image_size(config["data"]["train"]["image"])
    try:
        index = patches.patch_index(
            height, width, size, cfg.training_stride(config, size), experiment["val_fraction"], experiment["seed"],
            split=experiment["split"], block_size=experiment["block_size"],
        )
    except ValueError as error:  # a split that the image cannot give: the message names the keys
        raise ConfigError(f"experiment.split {experiment['split']!r}, {size} px patches: {error}") from None
    if (index.split == "train").sum() < MIN_TRAIN_PATCHES:
        raise ConfigError(
            f"experiment.split {experiment['split']!r}: only {(index.split == 'train').sum()} training patch(es) of "
            f"{size} px are left; training needs at least {MIN_TRAIN_PATCHES} (use smaller blocks or a smaller stride)")
    write_csv(index, out_csv)
    log.info("p%d: %d patches (%d train, %d val)", size, len(index), (index.split == "train").sum(), (index.split == "val").sum())


def train_case(
    config: dict, case: Case, patch_csv, weights_json, model_out, history_out, last_out=None,
    resume_path=None, threads: int = 1, repeat: int = 1,
) -> None:
    """Train one case (its ``repeat``, with that repeat's seed); write its best checkpoint,
    its last one and the per-epoch history.

    With ``resume_path`` the training state is kept there after every epoch, so a killed
    job continues where it stopped when run again; it is removed once the outputs exist.
    A run that diverges stops with an error naming the case and the epoch, and writes no model.
    """
    clock = StartupClock()
    import torch

    from . import device as devices
    from . import model as models
    from . import train

    clock.mark("imports")
    torch.set_num_threads(threads)
    device = devices.resolve(config["train"]["device"])
    clock.mark("device")
    seed = cfg.repeat_seed(config, repeat)
    log.info("case %s, repeat %d (seed %d), on %s (%d CPU threads)", case.name, repeat, seed, device, threads)
    image, ids = load_labelled(config, "train")
    index = pd.read_csv(patch_csv)
    names = cfg.class_names(config)
    weights = json.loads(Path(weights_json).read_text())
    clock.mark("data")
    t = config["train"]
    settings = train.TrainSettings(
        epochs=t["epochs"], batch_size=t["batch_size"], lr=t["lr"], seed=seed,
        optimizer=t["optimizer"], weight_decay=t["weight_decay"], augment=t["augment"], capture=t["capture"],
        resume_seconds=t["resume_seconds"],
    )
    train.seed_everything(settings.seed)
    spec = _model_spec(config, case.init, len(names), image.shape[2])
    net = models.build(spec, config["model"]["weights"])
    clock.mark("model")
    clock.report("the first epoch")
    try:
        history, best_state, best_epoch = train.fit(
            net, spec, image, ids, index, case.size, stats.loss_weights(weights, names, t["weighting"]),
            settings, device, resume_path=resume_path, fingerprint=_fingerprint(config, case, seed, patch_csv, weights_json),
        )
    except DivergenceError as error:
        run = case.name if repeat == 1 else f"{case.name} (repeat {repeat})"
        raise DivergenceError(f"case {run}: {error}") from None
    extra = dict(case=case.name, classes=names, colors=[list(c) for c in cfg.class_colors(config)])
    if last_out:
        models.save_checkpoint(last_out, net, spec, epoch=int(history.epoch.iloc[-1]), **extra)
    net.load_state_dict(best_state)
    models.save_checkpoint(model_out, net, spec, epoch=best_epoch, **extra)
    write_csv(history, history_out)
    if resume_path:
        Path(resume_path).unlink(missing_ok=True)
    log.info("kept epoch %d of %d (best validation mIoU)", best_epoch, settings.epochs)


def _fingerprint(config: dict, case: Case, seed: int, *paths) -> str:
    """What a saved training state must match to be resumed: everything that shapes the run
    except the device and the thread count."""
    import hashlib

    digest = hashlib.sha256()
    relevant = {k: config[k] for k in ("data", "model")}
    relevant["experiment"] = {k: v for k, v in config["experiment"].items() if k != "repeats"}
    relevant["train"] = {k: v for k, v in config["train"].items()
                         if k not in ("device", "threads", "capture", "resume_seconds")}
    digest.update(json.dumps([relevant, case.name, seed], sort_keys=True, default=str).encode())
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def _model_spec(config: dict, init: str, n_classes: int, in_channels: int):
    from .model import ModelSpec

    m = config["model"]
    return ModelSpec(
        n_classes=n_classes, init=init, encoder=m["encoder"], encoder_depth=m["encoder_depth"],
        decoder_channels=m["decoder_channels"], in_channels=in_channels, architecture=m["architecture"],
    )


def predict_images(config: dict, model_path, image_paths: Sequence, ids_outs: Sequence, color_outs: Sequence,
                   threads: int = 1) -> None:
    """Predict whole images with one case's model, each as a mosaic of overlapping windows;
    one job predicts them all, so the model and the device are set up once. A georeferenced
    image also gets ``prediction.tif`` beside its ``prediction.png`` (see `geotiff_path`)."""
    clock = StartupClock()
    import torch

    from . import device as devices
    from . import model as models
    from . import mosaic

    clock.mark("imports")
    torch.set_num_threads(threads)
    device = devices.resolve(config["train"]["device"])
    clock.mark("device")
    net, spec, checkpoint = models.load_checkpoint(model_path, device)
    log.info("case %s: predicting %d image(s) on %s (%d CPU threads)", checkpoint["case"], len(image_paths), device, threads)
    net = devices.channels_last(net)
    prepare = models.input_transform(spec, device)
    clock.mark("model")
    clock.report("the first window")

    def predictor(batch):
        with devices.autocast(device):
            return net(prepare(batch))

    size = Case.parse(checkpoint["case"]).size
    stride = cfg.prediction_stride(config, size)
    options = config["predict"]
    for image_path, ids_out, color_out in zip(image_paths, ids_outs, color_outs, strict=True):
        image = images.read_image(image_path, images.DataSpec.from_config(config))
        row_windows = len(patches.window_starts(image.shape[1], size, stride))
        batch_size = cfg.prediction_batch_size(config, size, device.type == "cuda", row_windows)
        start = time.perf_counter()
        ids = mosaic.predict_ids(
            mosaic.with_flips(predictor) if options["tta"] else predictor, image, spec.n_classes, size, stride,
            batch_size=batch_size, device=device, blend=options["blend"], progress=True,
        )
        log.info("%s: %d x %d px predicted with %d px windows, stride %d, batches of %d, %s blend%s, in %.1f s",
                 image_path, image.shape[1], image.shape[0], size, stride, batch_size, options["blend"],
                 " with flip TTA" if options["tta"] else "", time.perf_counter() - start)
        images.write_png(ids_out, ids)
        images.write_png(color_out, images.colorize(ids, cfg.class_colors(config)))
        where = images.georeference(image_path)
        if where is not None:
            images.write_geotiff(geotiff_path(ids_out), ids, where, cfg.class_colors(config), cfg.class_names(config))
            log.info("%s: georeferenced (%s); wrote %s", image_path, where.crs, geotiff_path(ids_out))
        elif Path(image_path).suffix.lower() in images.TIFF_SUFFIXES:
            log.info("%s: a TIFF without a CRS or geotransform; the prediction is written as PNG only", image_path)


def geotiff_path(ids_png) -> Path:
    """Where the GeoTIFF of a prediction goes: ``prediction.tif`` beside ``prediction.png``."""
    return Path(ids_png).with_suffix(".tif")


def evaluate(config: dict, case: Case, image: str, prediction_path, metrics_out, confusion_out, mosaic_out=None) -> None:
    """Per-class scores and the confusion matrix of one prediction against its label, and
    the mosaic figure (image | ground truth | prediction | errors) with the mIoU."""
    names = cfg.class_names(config)
    image_arr, truth = load_labelled(config, image)
    prediction = images.read_image(prediction_path)[:, :, 0]
    cm = confusion_matrix(truth, prediction, len(names))
    write_csv(per_class(cm, names), metrics_out)
    write_csv(pd.DataFrame(cm, index=names, columns=names).rename_axis("truth").reset_index(), confusion_out)
    if mosaic_out:
        from . import figures

        classes = list(zip(names, cfg.class_colors(config)))
        title = f"{case.name}, {image} image: mIoU {mean_iou(cm):.3f}"
        shown = image_arr[:, :, :3] if image_arr.shape[2] >= 3 else np.repeat(image_arr[:, :, :1], 3, axis=2)
        figures.save(figures.mosaic_panel(shown, truth, prediction, classes, title), mosaic_out)


def read_confusion(path) -> np.ndarray:
    return pd.read_csv(path, index_col=0).to_numpy()


def run_of(path) -> tuple[Case, int]:
    """The case and repeat of a file in ``results/cases/{case}/`` (repeat 1) or
    ``results/repeats/{repeat}/cases/{case}/``."""
    parts = Path(path).parts
    at = len(parts) - 1 - parts[::-1].index("cases")
    repeat = int(parts[at - 1]) if at >= 2 and parts[at - 2] == "repeats" else 1
    return Case.parse(parts[at + 1]), repeat


def summarize(config: dict, history_paths: Sequence, confusion_paths: Sequence, class_stats_csv, out: dict) -> None:
    """Write the comparison tables (CSV and Markdown), every single run, and the study's
    Tables 1-3 in its own layout.

    ``history_paths`` are ``.../cases/{case}/history.csv`` and ``confusion_paths``
    ``.../cases/{case}/{image}/confusion.csv`` of every repeat (`run_of`). ``out`` maps
    training, training_md, evaluation, evaluation_md, per_class, runs and study_tables to paths.
    """
    histories = {run_of(p): pd.read_csv(p) for p in history_paths}
    confusions = {(*run_of(p), Path(p).parent.name): read_confusion(p) for p in confusion_paths}
    training = tables.training_table(histories)
    evaluation = tables.evaluation_table(confusions)
    write_csv(training, out["training"])
    write_markdown(training, out["training_md"])
    write_csv(evaluation, out["evaluation"])
    write_markdown(evaluation, out["evaluation_md"])
    write_csv(tables.per_class_table(confusions, cfg.class_names(config)), out["per_class"])
    seeds = {repeat: cfg.repeat_seed(config, repeat) for _, repeat in histories}
    write_csv(tables.runs_table(histories, confusions, seeds), out["runs"])
    write_text(tables.study_tables(pd.read_csv(class_stats_csv), training, evaluation), out["study_tables"])


def conclude(config: dict, runs_csv, patch_csvs: Sequence, markdown_out, html_out) -> None:
    """Check the study's three conclusions against every run (see `aerialseg.conclusions`);
    ``patch_csvs`` are the patch indexes ``results/patches/p{size}.csv``."""
    from . import conclusions

    experiment = config["experiment"]
    overlapping = any(cfg.training_stride(config, size) < size for size in experiment["patch_sizes"])
    steps = {}
    for path in patch_csvs:
        n_train = int((pd.read_csv(path)["split"] == "train").sum())
        steps[int(Path(path).stem.lstrip("p"))] = patches.steps_per_epoch(n_train, config["train"]["batch_size"])
    found, blocks = conclusions.document(pd.read_csv(runs_csv), experiment["split"], overlapping, steps)
    write_text(conclusions.to_markdown(blocks), markdown_out)
    write_text(conclusions.to_html(blocks), html_out)
    for number, finding in enumerate(found, 1):
        log.info("conclusion %d (%s): %s", number, finding.claim, finding.verdict)


def figure_curves(case: Case, history_path, out) -> None:
    from . import figures

    history = pd.read_csv(history_path)
    figures.save(figures.training_curves(history, f"{case.name}: training curves"), out)


def figure_confusions(config: dict, image: str, confusion_paths: Sequence, out) -> None:
    from . import figures

    confusions = {Path(p).parent.parent.name: read_confusion(p) for p in confusion_paths}
    title = f"{image} image: row-normalised confusion matrices"
    figures.save(figures.confusion_grid(confusions, cfg.class_names(config), title), out)


def figure_summary(evaluation_csv, out) -> None:
    from . import figures

    figures.save(figures.metric_vs_patch_size(pd.read_csv(evaluation_csv)), out)
