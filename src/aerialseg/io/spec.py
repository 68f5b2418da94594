"""How to read the images and decode the labels: the ``data`` section of the config, shared
by `read` (bands, value range, no-data) and `labels` (the classes and their codes)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


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
    def for_images(cls, config: dict) -> "DataSpec":
        """What reading images needs (``data.bands``, ``value_range``, ``nodata``): a spec that
        decodes no label."""
        data = config["data"]
        return cls(colors=(), bands=tuple(data["bands"]), nodata=data["nodata"],
                   value_range=tuple(data["value_range"]) if data["value_range"] else None)

    @classmethod
    def from_config(cls, config: dict) -> "DataSpec":
        """Reading images and decoding labels: the reading keys and the classes, label format and
        ignored colours or values."""
        data = config["data"]
        values = [c.get("value") for c in data["classes"]]
        return replace(
            cls.for_images(config),
            colors=tuple(tuple(c["color"]) for c in data["classes"]),
            label_format=data["label_format"],
            values=tuple(values) if None not in values else None,
            ignore_colors=tuple(tuple(c) for c in data["ignore_colors"]),
            ignore_values=tuple(data["ignore_values"]),
            names=tuple(c["name"] for c in data["classes"]),
        )
