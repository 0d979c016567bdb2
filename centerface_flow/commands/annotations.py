"""``centerface annotations``: WIDER FACE training labels → COCO-keypoints ``train.json``."""
from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "annotations",
        help="convert WIDER FACE labels (RetinaFace label.txt or *_bbx_gt.txt) to COCO-keypoints JSON",
        description=__doc__,
    )
    parser.add_argument("--labels", required=True, help="label.txt (with landmarks) or wider_face_*_bbx_gt.txt")
    parser.add_argument("--images", default=None,
                        help="image folder the label paths are relative to; checks every image exists and "
                             "records its size")
    parser.add_argument("--out", required=True, help="output JSON (written atomically)")
    parser.add_argument("--drop-invalid", action="store_true",
                        help="bbx_gt only: also drop faces flagged 'invalid'")
    parser.add_argument("--keep-empty", action="store_true", help="keep images that have no faces")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from centerface_flow.data.annotations import labels_to_coco
    from centerface_flow.io import refuse_overwriting_inputs

    refuse_overwriting_inputs([("--out", args.out)], [("--labels", args.labels)])
    coco = labels_to_coco(args.labels, args.images, args.out, drop_invalid=args.drop_invalid,
                          keep_empty=args.keep_empty)
    with_lms = sum(1 for a in coco["annotations"] if a["num_keypoints"] > 0)
    logging.getLogger(__name__).info("wrote %s: %d images, %d faces (%d with landmarks)", args.out,
                                     len(coco["images"]), len(coco["annotations"]), with_lms)
    return 0
