"""The ``aerialseg`` command: map new imagery with a trained model, outside Snakemake, and
export a model to ONNX.

    aerialseg predict results/cases/imagenet_p64/model.pt photo1.tif photo2.tif -o maps/
    aerialseg predict model.onnx photo1.tif -o maps/
    aerialseg export results/cases/imagenet_p64/model.pt -o imagenet_p64.onnx

writes, for each image, exactly what the workflow's map rules write: its map (``{name}.tif``,
a Cloud-Optimised GeoTIFF in the image's CRS and transform, written band by band, for a
georeferenced image; ``{name}.png``, the class ids, for any other), a coloured preview
``{name}_preview.png``, its confidence raster ``{name}_confidence.tif`` (the probability
of the chosen class, uint8 with band scale 1/255), with ``--vectors`` the polygons
``{name}.gpkg`` (with each polygon's mean confidence), with ``--probabilities`` one probability
band per class ``{name}_probabilities.tif`` and with ``--confidence-threshold C`` the map with
pixels under confidence C as nodata, ``{name}_masked.tif|png``. Everything the model reads
(classes, bands, value range, normalisation, patch size) comes from the checkpoint or the ONNX
file's metadata; the options are the mosaic's. On the CPU the model runs on ONNX Runtime by
default (--backend); a model.onnx needs no torch at all. A thin entry point like the rule
scripts: the work is `prediction.map_images` and `export.export`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="aerialseg", description=__doc__.split("\n\n")[0])
    main.add_argument("--version", action="version", version=f"aerialseg {__version__}")
    commands = main.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="map images with a trained model (model.pt)",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    predict.add_argument("model", type=Path, help="a model.pt the workflow wrote, or a model.onnx exported from one")
    predict.add_argument("images", type=Path, nargs="+", help="images to map (PNG, JPEG, TIFF, GeoTIFF, ...)")
    predict.add_argument("-o", "--out", type=Path, required=True, help="folder for the maps and previews")
    predict.add_argument("--stride", type=int, default=None, help="px between windows (default: half the patch size)")
    predict.add_argument("--blend", choices=["mean", "gaussian"], default="mean", help="how overlapping windows combine")
    predict.add_argument("--tta", action="store_true", help="also average each window's three flips")
    predict.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default: a free GPU, else the CPU")
    predict.add_argument("--batch-size", type=int, default=None, help="windows per batch (default: the device's)")
    predict.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    predict.add_argument("--precision", choices=["auto", "float32", "bf16"], default="auto",
                         help="torch back-end: auto is bf16 on a GPU that has it, else float32 (predict.precision)")
    predict.add_argument("--memory-format", choices=["auto", "channels_last", "contiguous"], default="auto",
                         help="torch back-end: auto is channels-last (predict.memory_format)")
    predict.add_argument("--backend", choices=["auto", "torch", "onnxruntime"], default="auto",
                         help="auto: ONNX Runtime on the CPU, torch on a GPU (predict.backend)")
    predict.add_argument("--no-fold-batchnorm", dest="fold_batchnorm", action="store_false",
                         help="torch backend: keep batch norm apart from the convolutions (predict.fold_batchnorm)")
    predict.add_argument("--vectors", action="store_true", help="also write each georeferenced map as polygons (.gpkg)")
    predict.add_argument("--min-area", type=int, default=0, help="with --vectors: merge regions under this many px first")
    predict.add_argument("--probabilities", action="store_true",
                         help="also write each map's per-class probabilities, {name}_probabilities.tif")
    predict.add_argument("--confidence-threshold", type=_fraction, default=None, metavar="C",
                         help="also write {name}_masked.tif|png, the map with pixels of confidence under C as nodata")
    export = commands.add_parser("export", help="write a model.pt as an ONNX file (for aerialseg predict and QGIS)",
                                 description="Write a trained model.pt as one ONNX file that carries everything mapping "
                                 "needs (classes, bands, value range, normalisation, window size and stride) and the "
                                 "keys the QGIS Deepness plugin reads.")
    export.add_argument("model", type=Path, help="a model.pt the workflow wrote")
    export.add_argument("-o", "--out", type=Path, required=True, help="the ONNX file to write (model.onnx)")
    export.add_argument("--stride", type=int, default=None,
                        help="px between windows to record (default: the study's, from prediction_settings.yaml beside "
                        "the model, else half the patch size)")
    export.add_argument("--blend", choices=["mean", "gaussian"], default=None, help="the blend to record (default: the study's)")
    return main


def _fraction(text: str) -> float:
    """A number in (0, 1], as --confidence-threshold takes it."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"a confidence threshold lies in (0, 1], not {value}")
    return value


def export_model(args) -> int:
    from .errors import InputError
    from .export import export

    predict = {"stride": args.stride, "blend": args.blend} if args.stride or args.blend else None
    try:
        export(args.model, args.out, predict)
    except InputError as error:
        print(f"aerialseg: {error}", file=sys.stderr)
        return 2
    print(f"aerialseg: wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "export":
        return export_model(args)
    import os

    from . import backends
    from .jobs import runner, prediction
    from .config import layout
    from .errors import InputError

    settings = {"predict": {"stride": args.stride, "blend": args.blend, "tta": args.tta, "batch_size": args.batch_size,
                            "device": args.device, "threads": args.threads or os.cpu_count() or 1,
                            "vectors": args.vectors, "min_area": args.min_area, "precision": args.precision,
                            "memory_format": args.memory_format, "backend": args.backend,
                            "fold_batchnorm": args.fold_batchnorm, "probabilities": args.probabilities,
                            "confidence_threshold": args.confidence_threshold}}
    names = [path.stem for path in args.images]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        print(f"aerialseg: images named {', '.join(twice)} twice: their maps would overwrite each other", file=sys.stderr)
        return 2
    missing = [str(path) for path in args.images if not path.is_file()]
    if missing:
        print(f"aerialseg: no such image file: {', '.join(missing)}", file=sys.stderr)
        return 2
    taken = sorted({name for name in names if set(layout.companion_names(name)) & set(names)})
    if taken:
        clashes = [sorted(set(layout.companion_names(name)) & set(names)) for name in taken]
        print(f"aerialseg: the files beside the maps of {', '.join(taken)} (preview, confidence, ...) would overwrite "
              f"the maps of the images named {', '.join(n for c in clashes for n in c)}: rename one of each",
              file=sys.stderr)
        return 2
    try:
        outputs = [prediction.map_files(path, args.out) for path in args.images]
    except InputError as error:  # an unreadable image: one line, no traceback
        print(f"aerialseg: {error}", file=sys.stderr)
        return 2
    maps = [_map_files(args, image, map_out, preview) for image, (map_out, preview) in zip(args.images, outputs)]
    return runner.run(prediction.map_images, None, settings, args.model, maps, onnx_cache=backends.cache_dir())


def _map_files(args, image: Path, map_out: Path, preview: Path):
    """The files ``aerialseg predict`` writes for one image (`prediction.MapFiles`)."""
    from .config import layout
    from .jobs import prediction

    return prediction.MapFiles(
        image, map_out, preview,
        vectors=layout.vectors_path(map_out) if args.vectors and map_out.suffix == layout.GEOTIFF else None,
        confidence=layout.confidence_path(map_out),
        probabilities=layout.probabilities_path(map_out) if args.probabilities else None,
        masked=layout.masked_path(map_out) if args.confidence_threshold is not None else None)


if __name__ == "__main__":
    sys.exit(main())
