"""The ``aerialseg`` command: map new imagery with a trained model outside Snakemake
(``predict``), export a model to ONNX (``export``), say what a model was trained on
(``info``). A thin entry point like the rule scripts: the work is `prediction.map_images`,
`export.export` and `model_info.describe`. Its help, options, exit statuses and examples are
documented in docs/command-line.md.

Exit statuses: 0 done; 1 a problem with an input, the model or an output, said in one line
(with the traceback under ``--debug``); 2 a usage error (argparse's); 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import traceback
from pathlib import Path

from . import __version__, quantize

DONE, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130
"""The exit statuses of the command."""

EXIT_STATUS = """exit status:
  0    done
  1    a problem with an input image, the model or an output, said in one line
       (run again with --debug for the traceback)
  2    a usage error: an unknown option or a value that is not allowed
  130  interrupted (Ctrl-C)"""

MAIN_EXAMPLES = """examples:
  aerialseg predict results/cases/imagenet_p64/model.pt photo1.tif photo2.jpg -o maps/
  aerialseg export results/cases/imagenet_p64/model.pt -o imagenet_p64.onnx
  aerialseg predict imagenet_p64.onnx orthophoto.tif -o maps/ --vectors
  aerialseg info imagenet_p64.onnx
  aerialseg predict --help

"""

PREDICT_DESCRIPTION = """\
Map images with a trained model. Each image gets, in the output folder:
  NAME.tif          the map: a Cloud-Optimised GeoTIFF in the image's CRS and
                    transform, for a georeferenced image (a GeoTIFF, or any
                    image with a world file .tfw, .jgw, .pgw or .wld beside it)
  NAME.png          the map as a PNG of class ids, for any other image
  NAME_preview.png  the map in the classes' colours, at most 2048 px a side
  NAME.qml          beside a GeoTIFF map: its QGIS style, with the class names
                    and colours, which QGIS applies when the map is added
  NAME.gpkg         with --vectors: the GeoTIFF map as polygons, each with its
                    class name
NAME is the image file's name without its suffix. An existing map is refused
unless --overwrite is given. What the model reads (classes, bands, value range,
normalisation, window size) comes from the model file; the options below say
how it predicts and, for other imagery, which bands and no-data value it reads."""

PREDICT_EXAMPLES = """examples:
  aerialseg predict results/cases/imagenet_p64/model.pt photo1.tif photo2.jpg -o maps/
  aerialseg predict model.onnx orthophoto.tif -o maps/ --vectors --min-area 20
  aerialseg predict model.pt scene.tif -o maps/ --bands 4,3,2 --nodata 0 --overwrite
  aerialseg predict model.pt big.tif -o maps/ --device cuda:1 --window 256 --stride 192

"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written; each option's default shown unless its help
    says it already or it has none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        quiet = action.default is None or action.default is argparse.SUPPRESS or isinstance(action.default, bool)
        quiet = quiet or "default" in text
        return text if quiet or not action.option_strings else f"{text} (default: %(default)s)"


# --- option values ------------------------------------------------------------------------


def _device(text: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected auto, cpu, cuda or cuda:N (N the GPU's number from 0)")
    return text


def _band_numbers(text: str) -> tuple[int, ...]:
    parts = text.split(",")
    if not all(part.strip().isdigit() and int(part) >= 1 for part in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected band numbers counting from 1, separated by commas, "
                                         "such as 3,2,1")
    return tuple(int(part) for part in parts)


def _window(text: str) -> int:
    if not text.isdigit() or int(text) < 16 or int(text) % 16:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a multiple of 16 px (the network's output stride)")
    return int(text)


def _schema_default(key: str):
    """The schema's default of a ``predict`` key, for an option's help: the schema is where it lives."""
    from .config import load_schema

    return load_schema()["properties"]["predict"]["properties"][key]["default"]


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of at least 1")
    return int(text)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a confidence threshold lies in (0, 1]")
    return value


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of 0 or more")
    return int(text)


# --- the parser ---------------------------------------------------------------------------


def _common(before: str = "") -> argparse.ArgumentParser:
    """The options every command takes: how much it says; given before the command
    (``aerialseg -q predict ...``) they are kept apart (``before``), or a command's defaults
    would overwrite them."""
    common = argparse.ArgumentParser(add_help=False)
    loudness = common.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", dest=f"{before}quiet", action="store_true", help="say only warnings and errors")
    loudness.add_argument("-v", "--verbose", dest=f"{before}verbose", action="store_true",
                          help="say more: aerialseg's debug messages too")
    common.add_argument("--debug", dest=f"{before}debug", action="store_true",
                        help="show the traceback of an error, not only its one line")
    return common


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="aerialseg", formatter_class=_Formatter, epilog=MAIN_EXAMPLES + EXIT_STATUS, parents=[_common("before_")],
        description="Map aerial images with a model trained by the aerialseg workflow, export the model\n"
                    "to ONNX, or say what it was trained on. Each command has its own help:\n"
                    "aerialseg COMMAND --help.")
    main.add_argument("--version", action="version", version=f"aerialseg {__version__}")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common()
    _predict_parser(commands, common)
    _export_parser(commands, common)
    _info_parser(commands, common)
    return main


def _predict_parser(commands, common: argparse.ArgumentParser) -> None:
    predict = commands.add_parser("predict", parents=[common], formatter_class=_Formatter, help="map images",
                                  description=PREDICT_DESCRIPTION, epilog=PREDICT_EXAMPLES + EXIT_STATUS)
    predict.add_argument("model", type=Path, help="a model.pt the workflow wrote, or a model.onnx exported from one")
    predict.add_argument("images", type=Path, nargs="+", metavar="image",
                         help="images to map (GeoTIFF, TIFF, JPEG, PNG, or any raster GDAL reads)")
    output = predict.add_argument_group("output")
    output.add_argument("-o", "--out", type=Path, required=True, help="the folder for the maps (made if missing)")
    output.add_argument("--overwrite", action="store_true",
                        help="replace existing maps; their other files (preview, style, polygons, confidence) are "
                             "replaced or removed, none is left from the earlier map")
    output.add_argument("--format", choices=["auto", "png"], default="auto",
                        help="auto: a GeoTIFF map for a georeferenced image, a PNG for any other; png: a PNG of class "
                             "ids for every image (without georeference, no style or polygons)")
    output.add_argument("--vectors", action="store_true", default=None,
                        help="also write each GeoTIFF map as polygons (NAME.gpkg)")
    output.add_argument("--min-area", type=_count, metavar="PX",
                        help="with --vectors: merge regions smaller than this many pixels into their neighbours "
                             f"(default: {_schema_default('min_area')})")
    output.add_argument("--probabilities", action="store_true", default=None,
                        help="also write each map's per-class probabilities, one band per class (NAME_probabilities.tif)")
    output.add_argument("--confidence-threshold", type=_fraction, metavar="C",
                        help="also write each map with the pixels whose confidence is under C (0-1) as nodata "
                             "(NAME_masked.tif or .png)")
    reading = predict.add_argument_group("reading the images")
    reading.add_argument("--bands", type=_band_numbers, metavar="N,N,...",
                         help="the image bands to read, counting from 1 as GDAL and QGIS do, as many as the model "
                              "reads (default: those of its training images)")
    reading.add_argument("--nodata", type=float, metavar="VALUE",
                         help="the value that marks no-data pixels, in place of the image's own (default: the "
                              "image's nodata value, mask or alpha band)")
    _mosaic_options(predict)
    _runtime_options(predict)


def _mosaic_options(predict: argparse.ArgumentParser) -> None:
    mosaic = predict.add_argument_group("windows")
    mosaic.add_argument("--window", type=_window, metavar="PX",
                        help="the side of the square windows the model sees, a multiple of 16 (default: the model's "
                             "patch size)")
    mosaic.add_argument("--stride", type=_positive, metavar="PX",
                        help="pixels between windows (default: half the window)")
    mosaic.add_argument("--blend", choices=["mean", "gaussian"],
                        help="how overlapping windows combine: a plain mean, or weighted towards window centres "
                             f"(default: {_schema_default('blend')})")
    mosaic.add_argument("--tta", action="store_true", default=None, help="also average each window's three flips (slower)")


def _runtime_options(predict: argparse.ArgumentParser) -> None:
    runtime = predict.add_argument_group("where it runs")
    runtime.add_argument("--device", type=_device,
                         help="auto (a free GPU, else the CPU), cpu, cuda (a free GPU) or cuda:N (GPU number N) "
                              "(default: auto)")
    runtime.add_argument("--backend", choices=["auto", "torch", "onnxruntime"],
                         help="auto is ONNX Runtime on the CPU and PyTorch on a GPU; a model.onnx runs on ONNX "
                              f"Runtime only (default: {_schema_default('backend')})")
    runtime.add_argument("--batch-size", type=_positive, metavar="N", help="windows per batch (default: the device's)")
    runtime.add_argument("--threads", type=_positive, metavar="N", help="CPU threads (default: all cores)")
    runtime.add_argument("--precision", choices=["auto", "float32", "bf16"],
                         help="PyTorch only: auto is bf16 on a GPU that has it, else float32 "
                              f"(default: {_schema_default('precision')})")
    runtime.add_argument("--memory-format", choices=["auto", "channels_last", "contiguous"],
                         help=f"PyTorch only: auto is channels_last (default: {_schema_default('memory_format')})")
    runtime.add_argument("--no-fold-batchnorm", dest="fold_batchnorm", action="store_false", default=None,
                         help="PyTorch only: keep batch normalisation apart from the convolutions")


def _export_parser(commands, common: argparse.ArgumentParser) -> None:
    export = commands.add_parser(
        "export", parents=[common], formatter_class=_Formatter, help="write a model.pt as an ONNX file",
        description="Write a trained model.pt as one ONNX file that carries everything mapping needs\n"
                    "(classes, bands, value range, normalisation, window size and stride) and the keys\n"
                    "the QGIS Deepness plugin reads. aerialseg predict maps with it without PyTorch.",
        epilog="examples:\n  aerialseg export results/cases/imagenet_p64/model.pt -o imagenet_p64.onnx\n"
               "  aerialseg export model.pt -o model.onnx --stride 48 --blend gaussian\n\n" + EXIT_STATUS)
    export.add_argument("model", type=Path, help="a model.pt the workflow wrote")
    export.add_argument("-o", "--out", type=Path, required=True, help="the ONNX file to write")
    export.add_argument("--stride", type=_positive, metavar="PX",
                        help="pixels between windows to record (default: the study's, from prediction_settings.yaml "
                             "beside the model, else half the patch size)")
    export.add_argument("--blend", choices=["mean", "gaussian"], help="the blend to record (default: the study's)")
    export.add_argument("--int8", action="store_true",
                        help="write an int8 graph instead (ONNX Runtime's static quantisation: faster on the CPU, "
                             "some class ids differ: 0.7 %% on the Dubai test image); needs --calibration")
    export.add_argument("--calibration", type=Path, nargs="+", default=[], metavar="IMAGE",
                        help="with --int8: images like those the model will map (its training images) to calibrate on")
    export.add_argument("--calibration-windows", type=_positive, default=quantize.WINDOWS, metavar="N",
                        help="with --int8: windows to calibrate on")


def _info_parser(commands, common: argparse.ArgumentParser) -> None:
    info = commands.add_parser(
        "info", parents=[common], formatter_class=_Formatter, help="say what a model was trained on",
        description="Say what a model was trained on: its case and repeat, network, patch size, the\n"
                    "bands it reads and their value range, its classes and their colours, and the\n"
                    "study's scores where the workflow's results lie beside it. A model.onnx is read\n"
                    "without PyTorch.",
        epilog="examples:\n  aerialseg info results/cases/imagenet_p64/model.pt\n  aerialseg info imagenet_p64.onnx\n\n"
               + EXIT_STATUS)
    info.add_argument("model", type=Path, help="a model.pt the workflow wrote, or a model.onnx exported from one")


# --- the commands -------------------------------------------------------------------------


def predict(args: argparse.Namespace) -> int:
    from . import backends
    from .config import available_cores, layout, sections
    from .errors import InputError
    from .inference import ImageReading
    from .jobs import prediction

    # the options as predict.* keys, the schema's defaults for the rest (a bad value: ConfigError, one line)
    # an option not given is None: the schema's default (stride, which every config names, null: half the window;
    # the command's threads default to every core)
    given = {"blend": args.blend, "tta": args.tta, "batch_size": args.batch_size,
             "device": args.device, "threads": args.threads or available_cores(), "vectors": args.vectors,
             "min_area": args.min_area, "precision": args.precision, "memory_format": args.memory_format,
             "backend": args.backend, "fold_batchnorm": args.fold_batchnorm, "probabilities": args.probabilities,
             "confidence_threshold": args.confidence_threshold}
    settings = sections(train={}, predict={"stride": args.stride,
                                            **{key: value for key, value in given.items() if value is not None}})
    predict = settings["predict"]
    bands = tuple(number - 1 for number in args.bands) if args.bands else None
    reading = ImageReading(bands, args.nodata, args.window)  # the command's own: the workflow reads as trained
    # the study's temperature for the confidence: the calibration.csv the workflow wrote beside a model.pt
    calibration = args.model.with_name("calibration.csv") if args.model.suffix == ".pt" else None
    calibration = calibration if calibration is not None and calibration.is_file() else None
    request = prediction.MapRequest(args.out, predict["vectors"], layout.PNG if args.format == "png" else None,
                                    predict["probabilities"], predict["confidence_threshold"] is not None, calibration)
    maps = prediction.plan_maps(args.images, request)
    existing = prediction.existing_outputs(maps)
    if existing and not args.overwrite:
        more = f" (and {len(existing) - 1} more file(s) of these maps)" if len(existing) > 1 else ""
        raise InputError(f"{existing[0]} exists{more}: give --overwrite to replace the maps and their files")
    prediction.map_images(settings, args.model, maps, onnx_cache=backends.cache_dir(), reading=reading)
    return DONE


def export_model(args: argparse.Namespace) -> int:
    from .errors import InputError
    from .export import export

    # the options given; the others are the study's, recorded beside the model
    predict = {key: value for key, value in (("stride", args.stride), ("blend", args.blend)) if value is not None}
    if args.calibration and not args.int8:
        raise InputError("--calibration is for --int8 only")
    if args.int8:
        quantize.export_int8(args.model, args.out, args.calibration, args.calibration_windows, predict)
    else:
        export(args.model, args.out, predict)
    logging.getLogger("aerialseg").info("wrote %s", args.out)
    return DONE


def info(args: argparse.Namespace) -> int:
    from .jobs.model_info import describe

    print(describe(args.model))
    return DONE


COMMANDS = {"predict": predict, "export": export_model, "info": info}


LIBRARIES = ("rasterio", "pyogrio")
"""Libraries whose information messages (GDAL's errors as it probes a file, records written)
only --verbose shows: a failure reaches the user as aerialseg's one line."""


def _logging(args: argparse.Namespace) -> None:
    """Messages to stderr: warnings and errors only with --quiet, aerialseg's debug messages
    and the libraries' information too with --verbose."""
    from .jobs.runner import setup_logging

    setup_logging(None)
    if args.quiet:
        logging.getLogger().setLevel(logging.WARNING)
    if args.verbose:
        logging.getLogger("aerialseg").setLevel(logging.DEBUG)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.INFO if args.verbose else logging.WARNING)


def _failed(args: argparse.Namespace, error: BaseException, prefix: str = "") -> int:
    """An error as one line (with its traceback before it under --debug): exit status 1."""
    if args.debug:
        traceback.print_exception(type(error), error, error.__traceback__)
    print(f"aerialseg: {prefix}{error}", file=sys.stderr)
    return FAILED


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)  # a usage error exits here, with status 2
    for name in ("quiet", "verbose", "debug"):  # given before the command or after it
        setattr(args, name, getattr(args, name) or getattr(args, f"before_{name}"))
    if args.quiet and args.verbose:
        print("aerialseg: -q/--quiet and -v/--verbose exclude each other", file=sys.stderr)
        return 2
    from .errors import ConfigError, DivergenceError, InputError, WeightsError, WriteError

    _logging(args)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("aerialseg: interrupted", file=sys.stderr)
        return INTERRUPTED
    except (InputError, ConfigError, WeightsError, DivergenceError, WriteError, OSError) as error:
        return _failed(args, error)
    except Exception as error:  # unforeseen: one line still, the traceback on demand
        return _failed(args, error, f"unexpected error ({type(error).__name__}; run again with --debug for the "
                                    "traceback): ")


if __name__ == "__main__":
    sys.exit(main())
