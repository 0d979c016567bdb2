"""``centerface export``: a checkpoint to MINDIR / ONNX / AIR, verified against the checkpoint on a real image.
ONNX and MINDIR take any input size (batch, 3, height, width) unless --no-dynamic fixes it to 1 x 3 x HEIGHT x
WIDTH."""
from __future__ import annotations

import argparse

__all__ = ["register", "run"]


#: The arguments every export needs: option -> its add_argument keywords.
REQUIRED = {
    "--weights": {"help": "a .ckpt written by this project"},
    "--format": {"choices": ["mindir", "onnx", "air"]},
    "--out": {"help": "output file"},
    "--image": {"help": "a real image, or a folder (its first image), to verify the export on"},
}


def register(subparsers) -> None:
    from centerface_flow.export import ExportSettings

    defaults = ExportSettings()
    parser = subparsers.add_parser("export", help="export a checkpoint to MINDIR, ONNX or AIR (Ascend only)",
                                   description=__doc__)
    for option, keywords in REQUIRED.items():
        parser.add_argument(option, required=True, **keywords)
    for side in ("width", "height"):  # the export's settings: defaults from ExportSettings
        parser.add_argument(f"--{side}", type=int, default=getattr(defaults, side),
                            help=f"input {side} of a fixed-shape export; with --dynamic the first {side} it is "
                                 "checked at (default: %(default)s)")
    parser.add_argument("--dynamic", action=argparse.BooleanOptionalAction, default=defaults.dynamic,
                        help="ONNX / MINDIR: dynamic batch, height and width, padded to multiples of 32 inside the "
                        "graph; checked at three shapes (default: %(default)s)")
    parser.add_argument("--report", default=None, help="verification report (default: OUT.check.json)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from centerface_flow.export import export_checkpoint, first_image

    image = Path(args.image)
    image = first_image(image) if image.is_dir() else image
    result = export_checkpoint(args.weights, args.out, args.format, image, args.width, args.height, args.report,
                               dynamic=args.dynamic)
    worst = max(result["relative_error"].values(), default=0.0)
    shapes = ", ".join("x".join(str(d) for d in c["input_shape"]) for c in result["checks"]) or "not run"
    print(f"{args.out}: {result['format']}, {'dynamic' if result['dynamic'] else 'fixed'} input, worst relative "
          f"error vs checkpoint {worst:.3g} at {shapes} (tolerance {result['tolerance']})")
    return 0
