"""What a trained model was trained on (``aerialseg info``): its classes, the bands it reads,
their value range, its patch size, its case and repeat, and the study's scores where the
workflow's files lie beside it. A ``model.onnx`` is read without torch (its ``aerialseg``
metadata holds the same as the checkpoint); a ``model.pt`` needs torch to be read."""

from __future__ import annotations

import csv
from pathlib import Path

from ..config import SPLITS
from ..errors import InputError


def read_record(model_path) -> dict:
    """What a model file says about itself: a checkpoint's fields (without its weights), or
    an ONNX file's ``aerialseg`` metadata. `InputError` for any other file."""
    path = Path(model_path)
    if not path.is_file():
        raise InputError(f"{path}: model file does not exist")
    if path.suffix == ".onnx":
        return _onnx_record(path)
    if path.suffix != ".pt":
        raise InputError(f"{path}: not a model file: expected a model.pt the workflow wrote or a model.onnx")
    from ..model import read_trusted

    record = read_trusted(path, what="checkpoint", remedy="give a model.pt the workflow wrote")
    if not isinstance(record, dict) or not {"spec", "data", "patch_size"} <= set(record):
        raise InputError(f"{path}: not a checkpoint written by aerialseg (no model spec, classes and patch size)")
    return {key: value for key, value in record.items() if key != "state_dict"}


def _onnx_record(path: Path) -> dict:
    from ..export import read_metadata

    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False)
    except ImportError:
        raise InputError(f"{path}: reading an ONNX file needs the onnx package (pip install onnx)") from None
    except Exception as error:  # a truncated or foreign file
        raise InputError(f"{path}: cannot read this ONNX file ({type(error).__name__})") from None
    return read_metadata(path, {p.key: p.value for p in graph.metadata_props})


def describe(model_path) -> str:
    """The lines ``aerialseg info`` prints for a model."""
    record = read_record(model_path)
    data, spec = record["data"], record["spec"]
    repeat = record.get("repeat") or _beside(Path(model_path), "settings.yaml").get("repeat")
    lines = [f"model:       {model_path}",
             f"case:        {record['case']}" + (f", repeat {repeat}" if repeat else ""),
             f"network:     {spec.get('architecture', 'DeepLabV3Plus')}, encoder {spec.get('encoder')} (depth "
             f"{spec.get('encoder_depth')}), started from {spec.get('init')}",
             f"patch size:  {record['patch_size']} px" + _predict_line(record)]
    lines += _reading_lines(data)
    lines += [f"classes:     {len(data['classes'])}"]
    lines += [f"  {i:>3}  {_class_line(c)}" for i, c in enumerate(data["classes"])]
    if record.get("fingerprint"):
        lines.append(f"settings:    fingerprint {record['fingerprint']}")
    if record.get("source_sha256"):
        lines.append(f"exported from a model.pt with sha256 {record['source_sha256'][:16]}...")
    if record.get("precision") == "int8":  # aerialseg.quantize
        calibration = record.get("calibration", {})
        lines.append(f"precision:   int8 (activations calibrated on {calibration.get('windows', '?')} windows of "
                     f"{calibration.get('source', '?')})")
    scores = study_scores(Path(model_path), record["case"])
    lines += ["scores:      " + "; ".join(scores)] if scores else ["scores:      none found beside the model"]
    return "\n".join(lines)


def _predict_line(record: dict) -> str:
    predict = record.get("predict")
    return f" (exported to map with windows every {predict['stride']} px, {predict['blend']} blend)" if predict else ""


def _reading_lines(data: dict) -> list[str]:
    bands = ",".join(str(b + 1) for b in data.get("bands", (0, 1, 2)))
    value_range = data.get("value_range")
    nodata = data.get("nodata")
    return [f"bands:       {bands} (counting from 1, as GDAL and QGIS do) of images with {data.get('image_bands', '?')} "
            "data band(s)",
            "values:      " + (f"{value_range[0]:g} to {value_range[1]:g} scaled to 0-255" if value_range
                               else "the full range of the image's integer type scaled to 0-255"),
            "no-data:     " + (f"{nodata:g}" if nodata is not None else "the image's own (nodata value, mask or alpha)")]


def _class_line(found: dict) -> str:
    color = "#{:02x}{:02x}{:02x}".format(*found["color"])
    value = f", label value {found['value']}" if found.get("value") is not None else ""
    return f"{found['name']} ({color}{value})"


def study_scores(model_path: Path, case: str) -> list[str]:
    """The study's scores of the run whose folder holds the model (``{split}/metrics.csv``: the
    mean IoU over the classes) and of its case (``results/summary/training.csv``: the
    validation mIoU, the mean over repeats), where those files lie beside it."""
    scores = []
    for split in SPLITS:
        ious = _column(model_path.parent / split / "metrics.csv", "iou")
        if ious:
            scores.append(f"{split} mIoU {sum(ious) / len(ious):.4f} ({split}/metrics.csv)")
    training = model_path.parent.parent.parent / "summary" / "training.csv"
    rows = [row for row in _rows(training) if row.get("case") == case and row.get("val_miou")]
    if rows:
        scores.append(f"validation mIoU {float(rows[0]['val_miou']):.4f} ({training})")
    return scores


def _beside(model_path: Path, name: str) -> dict:
    """A YAML record the workflow writes beside a run's model (its ``settings.yaml``), or {}."""
    import yaml

    try:
        record = yaml.safe_load((model_path.parent / name).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return record if isinstance(record, dict) else {}


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _column(path: Path, name: str) -> list[float]:
    return [float(row[name]) for row in _rows(path) if row.get(name) not in (None, "")]
