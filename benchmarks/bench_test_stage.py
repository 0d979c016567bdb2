"""Test-stage timings: detect latency per 640×480 image (MindSpore vs ONNX Runtime, same weights, after warm-up)
and ``centerface postprocess`` + ``centerface evaluate`` wall time (process start to finish).

Usage::

    .venv/bin/python benchmarks/bench_test_stage.py [--image PHOTO] [--repeats 7]
        [--candidates C.npz --gt WIDER/ground_truth]
        [--stage-images WIDER_val/images --gt WIDER/ground_truth [--rounds 2]]

The detect latency covers what ``centerface detect`` does per image after loading the weights: pre-processing,
the network, peak extraction + decoding, score threshold + NMS. The released weights are used for both backends:
the converted checkpoint with MindSpore (in the mode ``--mode auto`` picks, as ``detect`` runs it) and the released ONNX file with
ONNX Runtime. The postprocess + evaluate timing runs the real commands in fresh processes (best of 3).

``--stage-images`` times the whole test stage of one model as the workflow runs it, ``centerface infer`` →
``postprocess`` → ``evaluate`` (each a fresh process, default settings), for the converted checkpoint with
MindSpore and for the released ONNX file with ONNX Runtime, in turn within each round; the table shows each
stage's best wall time over the rounds.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from centerface_flow import runtime


def latency(runner, image, cfg, post, repeats: int) -> list[float]:
    from centerface_flow.inference.detect import detect_image
    from centerface_flow.postprocess.predictions import select

    times = []
    for i in range(repeats + 2):  # two warm-up runs (graph compile, ORT allocations)
        start = time.perf_counter()
        boxes, scores, lms, _ = detect_image(runner, image, cfg)
        select(boxes, scores, lms, (image.shape[1], image.shape[0]), post)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return times


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def test_stage(images: str, gt: str, rounds: int) -> int:
    from centerface_flow.convert.released import find_released_onnx

    exe = str(Path(sys.executable).with_name("centerface"))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "released.ckpt"
        subprocess.run([exe, "convert", "released", "--out", str(ckpt)], check=True, capture_output=True)
        best: dict[str, list[float]] = {}
        for _ in range(rounds):
            for name, weights in (("MindSpore, converted checkpoint", ckpt), ("ONNX Runtime, released file",
                                                                             find_released_onnx())):
                cands, tree = Path(tmp) / "c.npz", Path(tmp) / "tree"
                times = [wall([exe, "infer", "--weights", str(weights), "--images", images, "--out", str(cands),
                               "--no-progress"]),
                         wall([exe, "postprocess", str(cands), "--out", str(tree)]),
                         wall([exe, "evaluate", "--pred", str(tree), "--gt", gt, "--subset"])]
                shutil.rmtree(tree)
                best[name] = [min(a, b) for a, b in zip(best[name], times)] if name in best else times
    print(f"test stage on {images}, default settings, best of {rounds} rounds (s)")
    print("| runtime | infer | postprocess | evaluate | total |")
    print("|---|---|---|---|---|")
    for name, (t_infer, t_post, t_eval) in best.items():
        print(f"| {name} | {t_infer:.1f} | {t_post:.1f} | {t_eval:.1f} | {t_infer + t_post + t_eval:.1f} |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="photo resized to 640x480 (default: scikit-image's astronaut)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--candidates", help="candidates .npz for the postprocess + evaluate timing")
    parser.add_argument("--gt", help="WIDER FACE ground_truth folder (with --candidates or --stage-images)")
    parser.add_argument("--stage-images", help="val image folder: time infer + postprocess + evaluate on it")
    parser.add_argument("--rounds", type=int, default=2, help="--stage-images: rounds of both runtimes")
    args = parser.parse_args()
    if args.stage_images:
        return test_stage(args.stage_images, args.gt, args.rounds)

    from centerface_flow.inference.backends import make_runner, resolve_mode

    mode = resolve_mode("auto")
    runtime.mindspore(mode)
    import cv2

    from centerface_flow.convert.released import convert_released, find_released_onnx
    from centerface_flow.inference.detect import InferenceConfig
    from centerface_flow.inference.preprocess import read_image
    from centerface_flow.postprocess.predictions import PostprocessConfig

    if args.image:
        image = read_image(args.image)
    else:
        from skimage import data

        image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    image = cv2.resize(image, (640, 480), interpolation=cv2.INTER_AREA)
    cfg, post = InferenceConfig(), PostprocessConfig(score_threshold=0.5, nms="hard", nms_iou=0.3)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = convert_released(None, Path(tmp) / "released.ckpt")
        rows = []
        for weights in (ckpt, find_released_onnx()):
            runner = make_runner(weights, mode=mode)
            times = latency(runner, image, cfg, post, args.repeats)
            rows.append((runner.description, statistics.median(times), min(times)))
    print(f"detect latency, 640x480, released weights, {args.repeats} runs after 2 warm-up runs")
    print(f"{'runner':<90} {'median ms':>10} {'min ms':>8}")
    for name, med, best in rows:
        print(f"{name:<90} {1000 * med:10.1f} {1000 * best:8.1f}")
    print(f"MindSpore / ONNX Runtime: {rows[0][1] / rows[1][1]:.2f}x")

    if args.candidates:
        exe = str(Path(sys.executable).with_name("centerface"))
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "tree"
            best = []
            for _ in range(3):
                t_post = wall([exe, "postprocess", args.candidates, "--out", str(tree)])
                t_eval = wall([exe, "evaluate", "--pred", str(tree), "--gt", args.gt, "--subset"])
                best.append((t_post + t_eval, t_post, t_eval))
                shutil.rmtree(tree)
        total, t_post, t_eval = min(best)
        print(f"postprocess {t_post:.2f} s + evaluate {t_eval:.2f} s = {total:.2f} s (best of 3, default settings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
