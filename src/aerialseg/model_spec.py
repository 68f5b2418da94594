"""What a trained model is, without torch: its architecture and the input normalisation it
expects (the ImageNet statistics for ImageNet weights, none from scratch). A checkpoint and an
exported ONNX file both carry it as a dict (`ModelSpec.to_dict`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a trained model from its checkpoint."""

    n_classes: int
    init: str  # "imagenet" or "scratch"
    encoder: str = "mobilenet_v2"
    encoder_depth: int = 4
    decoder_channels: int | tuple[int, ...] = 256
    in_channels: int = 3
    architecture: str = "DeepLabV3Plus"

    def __post_init__(self):
        if isinstance(self.decoder_channels, list):  # from a config or a checkpoint
            object.__setattr__(self, "decoder_channels", tuple(self.decoder_channels))

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-band input mean (inputs are scaled to 0..1 first): ImageNet's for ``imagenet``,
        band i taking that of colour i mod 3 as its first-layer filter does (`build`)."""
        return _per_band(IMAGENET_MEAN, self.in_channels) if self.init == "imagenet" else (0.0,) * self.in_channels

    @property
    def std(self) -> tuple[float, ...]:
        return _per_band(IMAGENET_STD, self.in_channels) if self.init == "imagenet" else (1.0,) * self.in_channels

    def to_dict(self) -> dict:
        return asdict(self)


def _per_band(rgb: tuple[float, float, float], bands: int) -> tuple[float, ...]:
    return tuple(rgb[i % 3] for i in range(bands))



def standardization(spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """The per-band mean and std (float32 vectors) of a spec given as a dict."""
    model = ModelSpec(**spec)
    return np.asarray(model.mean, np.float32), np.asarray(model.std, np.float32)
