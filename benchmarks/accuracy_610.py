"""Accuracy of the released CenterFace model on the 610 real WIDER FACE val images, through our test stage.

Runs, with the ``centerface`` CLI exactly as a user would:

1. ``centerface convert released --out WORK/released.ckpt`` (the authors' ONNX → our MindSpore checkpoint);
2. ``centerface infer`` for each configuration below, with the converted checkpoint (MindSpore) and/or the released
   ONNX file (ONNX Runtime);
3. ``centerface postprocess`` + ``centerface evaluate --subset`` with the same settings for all runs;

then prints a table of easy / medium / hard AP, the MindSpore-vs-ONNX-Runtime AP differences (must be ≤ 1e-3), and
the wall time of ``postprocess`` + ``evaluate`` (process start to finish; budget < 3 s).

Usage (the default runs take about 1 h on 2 busy CPU cores, mostly the flip + multi-scale run)::

    CENTERFACE_SHARED_DATA=/work/shared .venv/bin/python benchmarks/accuracy_610.py [--runs ...] [--work DIR]

Candidates files are reused when present (``--fresh`` recomputes them), so changing only the post-processing
options (``--score-threshold``, ``--nms`` ...) reruns only steps 3.
"""
from __future__ import annotations

import argparse
import csv
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

#: name -> (weights kind, size policy, extra infer arguments)
RUNS = {
    "ort-released": ("onnx", "released", []),
    "ms-released": ("ckpt", "released", []),
    "ort-letterbox": ("onnx", "letterbox", []),
    "ms-letterbox": ("ckpt", "letterbox", []),
    "ort-released-tta": ("onnx", "released", ["--flip", "--scales", "0.5", "1", "1.5"]),
    "ms-released-tta": ("ckpt", "released", ["--flip", "--scales", "0.5", "1", "1.5"]),
    "ort-letterbox-tta": ("onnx", "letterbox", ["--flip", "--scales", "0.5", "1", "1.5"]),
}
DEFAULT_RUNS = ["ort-released", "ms-released", "ort-letterbox", "ms-letterbox", "ort-released-tta"]
#: MindSpore vs ONNX Runtime pairs whose APs must agree.
PAIRS = [("ms-released", "ort-released"), ("ms-letterbox", "ort-letterbox"), ("ms-released-tta", "ort-released-tta")]
SETTINGS = ("easy", "medium", "hard")


def centerface(*args: str, log: Path | None = None) -> float:
    """Run ``centerface ARGS`` and return its wall time; print the command; fail loudly."""
    exe = Path(sys.executable).with_name("centerface")
    cmd = [str(exe), *args]
    print("$", shlex.join(["centerface", *args]), flush=True)
    start = time.perf_counter()
    with open(log, "w") if log else open(os.devnull, "w") as sink:
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=sink, text=True, check=False)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"command failed ({res.returncode}): {shlex.join(cmd)}; see {log}")
    return elapsed


def read_ap(path: Path) -> dict[str, float]:
    with open(path, newline="") as handle:
        return {row["setting"]: float(row["ap"]) for row in csv.DictReader(handle, delimiter="\t")}


def main() -> int:
    from centerface_flow.commands.postprocess import add_postprocess_options
    from centerface_flow.convert.released import find_released_onnx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = os.environ.get("CENTERFACE_SHARED_DATA", "/work/shared")
    parser.add_argument("--images", default=f"{shared}/widerface/WIDER_val/images")
    parser.add_argument("--gt", default=f"{shared}/widerface/ground_truth")
    parser.add_argument("--work", default="benchmarks/out/accuracy_610")
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=DEFAULT_RUNS)
    parser.add_argument("--iou", type=float, default=0.5)
    parser.add_argument("--fresh", action="store_true", help="recompute candidates even if present")
    add_postprocess_options(parser)
    args = parser.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    onnx = find_released_onnx()
    ckpt = work / "released.ckpt"
    if not ckpt.exists() or args.fresh:
        centerface("convert", "released", "--out", str(ckpt), log=work / "convert.log")
    post = ["--score-threshold", str(args.score_threshold), "--nms", args.nms, "--nms-iou", str(args.nms_iou),
            "--sigma", str(args.sigma), "--soft-threshold", str(args.soft_threshold), "--max-dets",
            str(args.max_dets)] + ([] if args.clip else ["--no-clip"])

    results, infer_times, post_times = {}, {}, {}
    for name in args.runs:
        kind, size, extra = RUNS[name]
        weights = str(onnx if kind == "onnx" else ckpt)
        cands = work / f"{name}.npz"
        if not cands.exists() or args.fresh:
            infer_times[name] = centerface("infer", "--weights", weights, "--images", args.images, "--size", size,
                                           *extra, "--no-progress", "--out", str(cands), log=work / f"{name}.infer.log")
        tree, table = work / "trees" / name, work / f"{name}.ap.tsv"
        t_post = centerface("postprocess", str(cands), "--out", str(tree), *post, log=work / f"{name}.post.log")
        t_eval = centerface("evaluate", "--pred", str(tree), "--gt", args.gt, "--subset", "--iou", str(args.iou),
                            "--out", str(table), log=work / f"{name}.eval.log")
        post_times[name] = (t_post, t_eval)
        results[name] = read_ap(table)

    print(f"\nWIDER FACE val subset ({args.images}), IoU {args.iou}, post-processing: {shlex.join(post)}")
    print(f"{'run':<20} {'easy':>7} {'medium':>7} {'hard':>7} {'infer s':>8} {'post+eval s':>12}")
    for name, ap in results.items():
        t_inf = f"{infer_times[name]:.0f}" if name in infer_times else "cached"
        t_pe = sum(post_times[name])
        print(f"{name:<20} " + " ".join(f"{ap[s]:7.4f}" for s in SETTINGS) + f" {t_inf:>8} {t_pe:12.2f}")
    worst = 0.0
    for a, b in PAIRS:
        if a in results and b in results:
            diffs = [abs(results[a][s] - results[b][s]) for s in SETTINGS]
            worst = max(worst, *diffs)
            print(f"|AP {a} - AP {b}|: " + " ".join(f"{d:.2e}" for d in diffs))
    if worst > 1e-3:
        print(f"FAIL: MindSpore and ONNX Runtime APs differ by {worst:.2e} > 1e-3")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
