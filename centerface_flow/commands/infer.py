"""``centerface infer``: one checkpoint (or ONNX file) × one image folder → one candidates file (.npz).

Runs the network and keeps, per image and per test pass (scale × flip), the top-K decoded heatmap peaks in
original-image pixels, before any score threshold or NMS; `centerface postprocess` turns them into detections.
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
    parser.add_argument("--mode", choices=["graph", "pynative"], default="graph",
                        help="MindSpore execution mode (default: %(default)s)")
    parser.add_argument("--pad-multiple", type=int, default=None, metavar="N",
                        help="MindSpore: zero-pad inputs at the bottom/right to multiples of N pixels so that many "
                             "image sizes share a few compiled graphs; outputs are exactly those of the unpadded "
                             "image (native kernels). 0 = off (default: 128, 0 for letterbox at one scale)")
    if tta:
        parser.add_argument("--flip", action="store_true", help="add horizontally flipped passes (TTA)")
        parser.add_argument("--scales", type=float, nargs="+", default=[1.0], metavar="S",
                            help="test scales relative to the size policy (TTA), e.g. 0.5 1 1.5 (default: 1)")
        parser.add_argument("--max-side", type=int, default=0, metavar="PX",
                            help="released size: process images whose longer side exceeds PX as if shrunk to PX "
                                 "(bounds time and memory on large photos; default 0 = no cap)")
        parser.add_argument("--top-k", type=int, default=200,
                            help="heatmap peaks kept per image and pass (default: %(default)s, as the model zoo)")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "infer",
        help="network inference on a WIDER-layout image folder -> top-K candidates per image (.npz)",
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
    import logging
    import time

    from centerface_flow.backends import default_pad_multiple, make_runner
    from centerface_flow.candidates import save_candidates
    from centerface_flow.detect import InferenceConfig, collect_images, infer_images
    from centerface_flow.errors import UserError

    log = logging.getLogger(__name__)
    cfg = InferenceConfig(size=args.size, scales=tuple(args.scales), flip=args.flip, top_k=args.top_k,
                          max_side=args.max_side)
    images = collect_images(args.images)
    if args.limit is not None:
        images = images[: args.limit]
    if not images:
        raise UserError(f"{args.images}: no images found (expected <event>/<image>.jpg)")
    pad = args.pad_multiple if args.pad_multiple is not None else default_pad_multiple(cfg.size, cfg.scales)
    runner = make_runner(args.weights, args.backend, args.mode, pad)
    log.info("%s: %d images, size %s, scales %s, flip %s, top-k %d", runner.description, len(images), cfg.size,
             list(cfg.scales), cfg.flip, cfg.top_k)
    start = time.perf_counter()
    cands = infer_images(runner, images, cfg, progress=not args.no_progress,
                         extra_meta={"images": str(args.images)})
    seconds = time.perf_counter() - start
    cands.meta["seconds"] = round(seconds, 2)
    save_candidates(args.out, cands)
    log.info("%d images in %.1f s (%.0f ms per image), %d candidates -> %s", len(cands), seconds,
             1000 * seconds / max(len(images), 1), len(cands.scores), args.out)
    if cands.failed:
        log.error("%d images could not be read: %s", len(cands.failed), ", ".join(cands.failed))
        return 1
    return 0
