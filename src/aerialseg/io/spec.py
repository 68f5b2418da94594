"""How to read the images and decode the labels: the ``data`` section of the config, shared
by `read` (bands, value range, no-data) and `labels` (the classes and their codes)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DataSpec:
    """How to read the images and decode the labels (the ``data`` section of the config)."""

    colors: tuple[tuple[int, int, int], ...]
    label_format: str = "color"
    values: tuple[int, ...] | None = None
    ignore_colors: tuple[tuple[int, int, int], ...] = ()
    ignore_values: tuple[int, ...] = ()
    bands: tuple[int, ...] = (0, 1, 2)
    value_range: tuple[float, float] | None = None
    names: tuple[str, ...] = field(default=())
    nodata: float | None = None

    @classmethod
    def from_config(cls, config: dict) -> "DataSpec":
        data = config["data"]
        classes = data.get("classes", [])  # reading images alone needs none
        values = [c.get("value") for c in classes]
        return cls(
            colors=tuple(tuple(c["color"]) for c in classes),
            label_format=data["label_format"],
            values=tuple(values) if None not in values else None,
            ignore_colors=tuple(tuple(c) for c in data["ignore_colors"]),
            ignore_values=tuple(data["ignore_values"]),
            bands=tuple(data["bands"]),
            value_range=tuple(data["value_range"]) if data.get("value_range") else None,
            names=tuple(c["name"] for c in classes),
            nodata=data["nodata"],
        )
