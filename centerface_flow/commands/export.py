"""``centerface export``: a checkpoint to MINDIR / ONNX / AIR, verified against the checkpoint on a real image."""
from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers) -> None:
    from centerface_flow.export import ExportSettings

    d = ExportSettings()
    parser = subparsers.add_parser("export", help="export a checkpoint to MINDIR, ONNX or AIR (Ascend only)",
                                   description=__doc__)
    parser.add_argument("--weights", required=True, help="a .ckpt written by this project")
    parser.add_argument("--format", required=True, choices=["mindir", "onnx", "air"])
    parser.add_argument("--out", required=True, help="output file")
    parser.add_argument("--image", required=True,
                        help="a real image, or a folder (its first image), to verify the export on")
    parser.add_argument("--width", type=int, default=d.width,
                        help="input width of the exported graph (default: %(default)s)")
    parser.add_argument("--height", type=int, default=d.height,
                        help="input height of the exported graph (default: %(default)s)")
    parser.add_argument("--report", default=None, help="verification report (default: OUT.check.json)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from centerface_flow.export import export_checkpoint, first_image

    image = Path(args.image)
    image = first_image(image) if image.is_dir() else image
    result = export_checkpoint(args.weights, args.out, args.format, image, args.width, args.height, args.report)
    worst = max(result["relative_error"].values(), default=0.0)
    print(f"{args.out}: {result['format']}, worst relative error vs checkpoint {worst:.3g} "
          f"(tolerance {result['tolerance']})")
    return 0
