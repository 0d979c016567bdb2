"""``centerface postprocess``: a candidates file → WIDER FACE prediction tree + landmarks table (no network run).

Changing the score threshold or the NMS settings only needs this step, never `centerface infer` again.
"""
from __future__ import annotations

import argparse

__all__ = ["add_postprocess_options", "register", "run"]


def add_postprocess_options(parser: argparse.ArgumentParser) -> None:
    """The score/NMS options shared by ``postprocess`` and ``detect`` (defaults: ``PostprocessConfig``)."""
    from centerface_flow.postprocess.nms import NMS_METHODS
    from centerface_flow.postprocess.predictions import PostprocessConfig

    d = PostprocessConfig()
    group = parser.add_argument_group("score threshold and NMS")
    group.add_argument("--score-threshold", type=float, default=d.score_threshold,
                       help="drop candidates scoring below this before NMS (default: %(default)s)")
    group.add_argument("--nms", choices=list(NMS_METHODS), default=d.nms,
                       help="hard NMS, or soft-NMS with linear or gaussian decay (default: %(default)s)")
    group.add_argument("--nms-iou", type=float, default=d.nms_iou,
                       help="IoU above which hard NMS removes and linear soft-NMS decays a box (Nt; "
                            "default: %(default)s)")
    group.add_argument("--nms-plus-one", action=argparse.BooleanOptionalAction, default=d.nms_plus_one,
                       help="add 1 pixel to widths/heights in NMS overlaps (model zoo, WIDER evaluator); the "
                            "released model's authors use continuous boxes (default: %(default)s)")
    group.add_argument("--box-voting", action=argparse.BooleanOptionalAction, default=d.box_voting,
                       help="hard NMS: replace each kept box by the score-weighted mean of itself and the "
                            "candidates it suppressed (merges test-time augmentation passes; default: %(default)s)")
    group.add_argument("--sigma", type=float, default=d.sigma,
                       help="gaussian soft-NMS: score *= exp(-IoU^2 / sigma) (default: %(default)s)")
    group.add_argument("--soft-threshold", type=float, default=d.soft_threshold,
                       help="soft-NMS: drop boxes whose decayed score falls below this (default: %(default)s)")
    group.add_argument("--max-dets", type=int, default=d.max_dets,
                       help="keep at most this many detections per image, 0 = no cap (default: %(default)s)")
    group.add_argument("--no-clip", dest="clip", action="store_false",
                       help="do not clip boxes to the image before NMS")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "postprocess",
        help="candidates (.npz from `centerface infer`) -> WIDER prediction tree <event>/<image>.txt + landmarks",
        description=__doc__,
    )
    parser.add_argument("candidates", metavar="FILE", help="candidates .npz written by `centerface infer`")
    parser.add_argument("--out", required=True, metavar="TREE",
                        help="output folder; replaced as a whole (only if it is empty or an earlier tree)")
    add_postprocess_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from centerface_flow.inference.candidates import load_candidates
    from centerface_flow.postprocess.predictions import PostprocessConfig, write_tree
    from centerface_flow.settings import from_args

    cfg = from_args(PostprocessConfig, args)
    cands = load_candidates(args.candidates)
    summary = write_tree(cands, args.out, cfg)
    logging.getLogger(__name__).info(
        "%s: %d images, %d detections in %.2f s (%s NMS, score >= %g)", args.out, summary["images"],
        summary["detections"], summary["seconds"], cfg.nms, cfg.score_threshold)
    if cands.failed:
        logging.getLogger(__name__).warning("%d images failed at inference and have no prediction file: %s",
                                            len(cands.failed), ", ".join(cands.failed[:5]))
    return 0
