"""Which test-time augmentation to recommend: AP and time per image of each scale set × merge, from one candidates file.

Run inference once with every pass any set needs (the file keeps which pass produced each candidate, and each
pass's wall time), then every set is a filter on those rows, so trying a set costs post-processing + evaluation only::

    centerface infer --weights centerface.onnx --images WIDER_val/images --out all.npz \\
        --scales 0.5 0.75 1 1.5 2 --flip --min-score 0.02
    python benchmarks/tta_scale_sets.py all.npz --gt WIDER/ground_truth [--sets "1" "0.5,1,1.5,2" ...]

Prints a markdown table: scale set, flip, merge (hard NMS of the concatenated passes, the same with box voting,
gaussian soft-NMS), easy / medium / hard AP (the images of the file only), network seconds per image of the set's
passes, candidates per image, post-processing seconds for the whole set.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time

import numpy as np

MERGES = {
    "hard NMS": {"nms": "hard"},
    "hard NMS + box voting": {"nms": "hard", "box_voting": True},
    "gaussian soft-NMS": {"nms": "gaussian"},
}
DEFAULT_SETS = ["1", "0.75,1", "1,1.5", "1,2", "0.5,1,1.5", "0.5,1,2", "1,1.5,2", "0.5,1,1.5,2", "0.75,1,1.5,2",
                "0.5,0.75,1,1.5,2"]


def subset_passes(cands, keep_pass: np.ndarray):
    """The rows of ``cands`` whose pass index is selected by ``keep_pass`` ((P,) bool)."""
    from centerface_flow.inference.candidates import Candidates

    rows = keep_pass[cands.passes]
    kept_before = np.concatenate([[0], np.cumsum(rows, dtype=np.int64)])  # kept rows before each row
    offsets = kept_before[cands.offsets]
    return Candidates(cands.paths, cands.sizes, offsets, cands.boxes[rows], cands.scores[rows],
                      cands.landmarks[rows], cands.passes[rows], cands.meta, cands.failed)


def main(argv: list[str] | None = None) -> int:
    from centerface_flow.evaluation import evaluate_tree
    from centerface_flow.inference.candidates import load_candidates
    from centerface_flow.postprocess.predictions import PostprocessConfig, write_tree

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidates")
    parser.add_argument("--gt", required=True, help="folder with wider_face_val.mat and wider_{easy,medium,hard}_val.mat")
    parser.add_argument("--sets", nargs="+", default=DEFAULT_SETS, help="comma-separated scale sets")
    parser.add_argument("--flip", choices=["both", "yes", "no"], default="both")
    parser.add_argument("--merges", nargs="+", default=list(MERGES), choices=list(MERGES))
    parser.add_argument("--score-threshold", type=float, default=PostprocessConfig().score_threshold)
    args = parser.parse_args(argv)

    cands = load_candidates(args.candidates)
    passes = [(float(p["scale"]), bool(p["flip"])) for p in cands.meta["inference"]["passes"]]
    seconds = np.asarray(cands.meta.get("pass_seconds", [float("nan")] * len(passes))) / max(len(cands), 1)
    flips = {"both": [False, True], "yes": [True], "no": [False]}[args.flip]
    print(f"{args.candidates}: {len(cands)} images, passes {passes}", file=sys.stderr)
    print("| scales | flip | merge | easy | medium | hard | network s/image | candidates/image | postprocess s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for text in args.sets:
        scales = [float(x) for x in text.split(",")]
        for flip in flips:
            wanted = np.array([s in scales and (flip or not f) for s, f in passes])
            if sum(wanted) != len(scales) * (2 if flip else 1):
                print(f"skipping {text} flip={flip}: passes missing from the file", file=sys.stderr)
                continue
            part = subset_passes(cands, wanted)
            for merge in args.merges:
                cfg = dataclasses.replace(PostprocessConfig(score_threshold=args.score_threshold), **MERGES[merge])
                with tempfile.TemporaryDirectory() as tmp:
                    start = time.perf_counter()
                    write_tree(part, f"{tmp}/tree", cfg)
                    post = time.perf_counter() - start
                    ap = evaluate_tree(f"{tmp}/tree", args.gt, subset=True).ap()
                print(f"| {text} | {'yes' if flip else 'no'} | {merge} | {ap['easy']:.4f} | {ap['medium']:.4f} | "
                      f"{ap['hard']:.4f} | {seconds[wanted].sum():.3f} | {len(part.scores) / len(part):.0f} | "
                      f"{post:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
