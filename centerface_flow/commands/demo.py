"""``centerface demo``: build the embedded demo data set (WIDER FACE formats, real photos from scikit-image)."""
from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers) -> None:
    from centerface_flow.data.demo import DEMO_DOMAINS, DemoSpec

    d = DemoSpec()
    parser = subparsers.add_parser("demo", help="build the small demo data set the workflow uses by default",
                                   description=__doc__)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--domain", choices=DEMO_DOMAINS, default=d.domain,
                        help="what the camera sees: faces turned a quarter turn (rotated), as photographed (upright), "
                             "low-contrast grey (infrared), heavy defocus (blur); default %(default)s")
    parser.add_argument("--train-images", type=int, default=d.train_images, help="default %(default)s")
    parser.add_argument("--val-images", type=int, default=d.val_images, help="default %(default)s")
    parser.add_argument("--seed", type=int, default=d.seed, help="default %(default)s")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from centerface_flow.data.demo import DemoSpec, build_demo

    paths = build_demo(args.out, DemoSpec(domain=args.domain, train_images=args.train_images,
                                          val_images=args.val_images, seed=args.seed))
    for key, path in paths.items():
        print(f"{key}: {path}")
    return 0
