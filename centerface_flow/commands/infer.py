"""``centerface infer``: one checkpoint (or ONNX file) × one image folder → one candidates file (.npz).

Runs the network and keeps, per image and per test pass (scale × flip), the decoded candidates in original-image
pixels (every heatmap cell above a floor, or the top-K peaks), before any score threshold or NMS;
`centerface postprocess` turns them into detections.
"""
from __future__ import annotations

import argparse

__all__ = ["add_inference_options", "register", "run"]


def add_inference_options(parser: argparse.ArgumentParser, tta: bool = True) -> None:
    """Weights, backend and size-policy options shared by ``infer`` and ``detect``."""
    parser.add_argument("--weights", required=True, metavar="W",
                        help="MindSpore checkpoint (.ckpt) or ONNX file (.onnx; ours or the released centerface.onnx)")
    parser.add_argument("--backend", choices=["mindspore", "onnxruntime"], default=None,
                        help="default: mindspore for .ckpt, onnxruntime for .onnx")
    parser.add_argument("--size", choices=["released", "letterbox"], default="released",
                        help="released: resize to a multiple of 32 of the original size (authors' demo); "
                             "letterbox: scale the long side to 832 on an 832x832 canvas (model zoo) "
                             "(default: %(default)s)")
    from centerface_flow.inference.backends import MODES

    parser.add_argument("--mode", choices=MODES, default="auto",
                        help="MindSpore execution mode; auto: pynative on CPU (no compile, and faster per call "
                             "with the native kernels), graph on Ascend (default: %(default)s)")
    parser.add_argument("--pad-multiple", type=int, default=None, metavar="N",
                        help="MindSpore graph mode: zero-pad inputs at the bottom/right to multiples of N pixels so "
                             "that many image sizes share a few compiled graphs; outputs are exactly those of the "
                             "unpadded image (native kernels). 0 = off (default: 128; 0 for letterbox at one scale "
                             "and in pynative mode)")
    if tta:
        from centerface_flow.inference.decode import DECODE_MODES
        from centerface_flow.inference.detect import TTA_MAX_SIDE, TTA_MIN_SCORE, TTA_SCALES, InferenceConfig

        d = InferenceConfig()
        parser.add_argument("--decode", choices=DECODE_MODES, default=d.decode,
                            help="cells: every heatmap cell scoring at least --min-score, decoded as the released "
                                 "model's authors do (nothing lost before NMS); peaks: the --top-k 3x3 heatmap "
                                 "maxima per pass (CenterNet / model zoo) (default: %(default)s)")
        parser.add_argument("--min-score", type=float, default=d.min_score, metavar="S",
                            help="cells: candidate floor, below any post-processing threshold (default: %(default)s)")
        parser.add_argument("--top-k", type=int, default=d.top_k,
                            help="peaks: heatmap peaks kept per image and pass (default: %(default)s, as the model "
                                 "zoo)")
        parser.add_argument("--flip", action="store_true", help="add horizontally flipped passes (TTA)")
        parser.add_argument("--scales", type=float, nargs="+", default=list(d.scales), metavar="S",
                            help="test scales relative to the size policy (TTA), e.g. 0.5 1 1.5 (default: 1)")
        parser.add_argument("--max-side", type=int, default=d.max_side, metavar="PX",
                            help="released size: shrink all passes of an image alike so that its largest pass has "
                                 "no side longer than PX (bounds time and memory on large photos; default: 0 = no "
                                 f"cap, {TTA_MAX_SIDE} with --tta)")
        parser.add_argument("--tta", action="store_true",
                            help=f"the recommended test-time augmentation: scales {' '.join(map(str, TTA_SCALES))}, "
                                 f"with flip, largest pass capped at {TTA_MAX_SIDE} px, candidate floor at least "
                                 f"{TTA_MIN_SCORE} (not with --scales/--flip)")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "infer",
        help="network inference on a WIDER-layout image folder -> candidates per image (.npz)",
        description=__doc__,
    )
    add_inference_options(parser)
    parser.add_argument("--images", required=True, metavar="DIR",
                        help="image folder in the WIDER layout <event>/<image>.jpg (searched recursively)")
    parser.add_argument("--out", required=True, metavar="FILE", help="candidates file to write (.npz)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (sorted by path)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from centerface_flow.inference.detect import InferenceConfig, infer_folder
    from centerface_flow.settings import from_args

    cands = infer_folder(args.weights, args.images, args.out, from_args(InferenceConfig, args), backend=args.backend,
                         mode=args.mode, pad_multiple=args.pad_multiple, limit=args.limit,
                         progress=not args.no_progress)
    return 1 if cands.failed else 0
