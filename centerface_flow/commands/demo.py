"""``centerface demo``: build the embedded demo data set (WIDER FACE formats, real photos from scikit-image)."""
from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="build the small demo data set the workflow uses by default",
                                   description=__doc__)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--train-images", type=int, default=24)
    parser.add_argument("--val-images", type=int, default=12)
    parser.add_argument("--seed", type=int, default=2016)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from centerface_flow.data.demo import DemoSpec, build_demo

    paths = build_demo(args.out, DemoSpec(train_images=args.train_images, val_images=args.val_images,
                                          seed=args.seed))
    for key, path in paths.items():
        print(f"{key}: {path}")
    return 0
