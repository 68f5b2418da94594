"""The ``aerialseg`` command: map new imagery with a trained model, outside Snakemake.

    aerialseg predict results/cases/imagenet_p64/model.pt photo1.tif photo2.tif -o maps/

writes, for each image, exactly what the workflow's map rules write: its map (``{name}.tif``,
a Cloud-Optimised GeoTIFF in the image's CRS and transform, written band by band, for a
georeferenced image; ``{name}.png``, the class ids, for any other), a coloured preview
``{name}_preview.png``, and with ``--vectors`` the polygons ``{name}.gpkg``. Everything the model reads
(classes, bands, value range, normalisation, patch size) comes from the checkpoint; the options
are the mosaic's. A thin entry point like the rule scripts: the work is `pipeline.map_images`.
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
    predict.add_argument("model", type=Path, help="a model.pt the workflow wrote")
    predict.add_argument("images", type=Path, nargs="+", help="images to map (PNG, JPEG, TIFF, GeoTIFF, ...)")
    predict.add_argument("-o", "--out", type=Path, required=True, help="folder for the maps and previews")
    predict.add_argument("--stride", type=int, default=None, help="px between windows (default: half the patch size)")
    predict.add_argument("--blend", choices=["mean", "gaussian"], default="mean", help="how overlapping windows combine")
    predict.add_argument("--tta", action="store_true", help="also average each window's three flips")
    predict.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default: a free GPU, else the CPU")
    predict.add_argument("--batch-size", type=int, default=None, help="windows per batch (default: the device's)")
    predict.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    predict.add_argument("--precision", choices=["auto", "float32", "bf16"], default="auto",
                         help="auto: bf16 on a GPU that has it, float32 on the CPU (predict.precision)")
    predict.add_argument("--memory-format", choices=["auto", "channels_last", "contiguous"], default="auto",
                         help="auto: channels-last (predict.memory_format)")
    predict.add_argument("--vectors", action="store_true", help="also write each georeferenced map as polygons (.gpkg)")
    predict.add_argument("--min-area", type=int, default=0, help="with --vectors: merge regions under this many px first")
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    import os

    from . import pipeline
    from .errors import InputError

    settings = {"predict": {"stride": args.stride, "blend": args.blend, "tta": args.tta, "batch_size": args.batch_size,
                            "device": args.device, "threads": args.threads or os.cpu_count() or 1,
                            "vectors": args.vectors, "min_area": args.min_area, "precision": args.precision,
                            "memory_format": args.memory_format}}
    names = [path.stem for path in args.images]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        print(f"aerialseg: images named {', '.join(twice)} twice: their maps would overwrite each other", file=sys.stderr)
        return 2
    missing = [str(path) for path in args.images if not path.is_file()]
    if missing:
        print(f"aerialseg: no such image file: {', '.join(missing)}", file=sys.stderr)
        return 2
    taken = sorted({name for name in names if f"{name}_preview" in names})
    if taken:
        print(f"aerialseg: the previews of {', '.join(taken)} would overwrite the maps of the images named "
              f"{', '.join(name + '_preview' for name in taken)}: rename one of each", file=sys.stderr)
        return 2
    try:
        outputs = [pipeline.map_files(path, args.out) for path in args.images]
    except InputError as error:  # an unreadable image: one line, no traceback
        print(f"aerialseg: {error}", file=sys.stderr)
        return 2
    try:
        pipeline.run(pipeline.map_images, None, settings, args.model, args.images,
                     [m for m, _ in outputs], [p for _, p in outputs])
    except SystemExit as stop:  # pipeline.run logged the one-line reason
        return int(stop.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
