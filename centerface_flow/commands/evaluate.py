"""``centerface evaluate``: WIDER FACE easy/medium/hard AP of a prediction tree (no MindSpore import)."""
from __future__ import annotations

import argparse
import sys

__all__ = ["register", "run"]


def register(subparsers) -> None:
    from centerface_flow.evaluation.core import PROTOCOLS
    from centerface_flow.settings import EvaluateSettings

    d = EvaluateSettings()
    parser = subparsers.add_parser(
        "evaluate",
        help="WIDER FACE AP of a prediction tree",
        description="Evaluate a prediction tree <pred>/<event>/<image>.txt (line 1 image name, line 2 count, then "
        "'x y w h score' rows) against the official WIDER FACE val ground truth.",
    )
    parser.add_argument("--pred", required=True, help="prediction tree root")
    parser.add_argument("--gt", required=True,
                        help="folder holding wider_face_val.mat and wider_{easy,medium,hard}_val.mat")
    parser.add_argument("--iou", type=float, default=d.iou,
                        help="match IoU threshold (default %(default)s; 0.5 is the official value, the MindSpore model "
                             "zoo used 0.4)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default=d.protocol,
                        help="python: the widely used Python port; official: MATLAB eval_tools semantics "
                             "(default: %(default)s)")
    parser.add_argument("--subset", action="store_true",
                        help="evaluate only the images that have a prediction file (ground truth restricted to them)")
    parser.add_argument("--out", help="write the AP table (TSV) here")
    parser.add_argument("--pr-out", help="write the PR curve points (TSV) here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from centerface_flow.evaluation import evaluate_tree, write_ap_table, write_pr_curves
    from centerface_flow.settings import EvaluateSettings, from_args

    settings = from_args(EvaluateSettings, args)
    result = evaluate_tree(args.pred, args.gt, iou=settings.iou, protocol=settings.protocol, subset=args.subset)
    if args.out:
        write_ap_table(result, args.out)
    if args.pr_out:
        write_pr_curves(result, args.pr_out)
    scope = "subset of " if result.subset else ""
    print(f"WIDER FACE val, {scope}{result.images} images, protocol {result.protocol}, IoU {result.iou:g}")
    print(f"{'setting':<8} {'AP':>8} {'faces':>7} {'images':>7}")
    for s in result.settings.values():
        print(f"{s.setting:<8} {s.ap:>8.4f} {s.faces:>7d} {s.images:>7d}")
    sys.stdout.flush()
    return 0
