"""Time a full WIDER FACE val evaluation (3,226 images, three settings) through `centerface evaluate`,
process start to finish.

The prediction tree is synthesised from the ground truth (kept faces with jittered boxes + false boxes, rows
unsorted), so only the official ``.mat`` files are needed:

    .venv/bin/python benchmarks/bench_evaluate.py --gt /work/shared/widerface/ground_truth
    .venv/bin/python benchmarks/bench_evaluate.py --gt ... --extra 200 --protocol official --repeat 5

``--extra`` is the mean number of false boxes per image (8 gives ~59k rows; 200 gives ~680k rows, the size of a
low-threshold detector's output). The tree is cached under benchmarks/out/ (git-ignored).
"""
from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gt", required=True, help="folder with wider_face_val.mat and wider_{easy,medium,hard}_val.mat")
    parser.add_argument("--extra", type=float, default=8.0, help="mean false boxes per image (default 8)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--protocol", choices=("python", "official"), default="python")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"), help="cache folder for the tree")
    args = parser.parse_args()

    from centerface_flow.evaluation import load_ground_truth
    from centerface_flow.evaluation.synthetic import synthetic_detections, write_tree

    tree = Path(args.out) / f"tree_seed{args.seed}_extra{args.extra:g}"
    if not (tree / "done").is_file():
        shutil.rmtree(tree, ignore_errors=True)
        gt = load_ground_truth(args.gt)
        detections = synthetic_detections(gt, args.seed, extra_per_image=args.extra)
        write_tree(gt, detections, tree)
        (tree / "done").write_text(f"{sum(len(d) for d in detections)}\n")
    rows = int((tree / "done").read_text())

    command = [str(Path(sys.executable).with_name("centerface")), "evaluate", "--pred", str(tree), "--gt", args.gt,
               "--protocol", args.protocol]
    if not Path(command[0]).is_file():
        command = [sys.executable, "-m", "centerface_flow.cli", *command[1:]]
    times, cpu = [], []
    for _ in range(args.repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(command, check=True, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    print(proc.stdout, end="")
    print(f"tree: {tree} ({rows} detections)")
    print(f"`centerface evaluate --protocol {args.protocol}`, process start to finish, {args.repeat} runs: "
          f"wall min {min(times):.3f} s, median {statistics.median(times):.3f} s, max {max(times):.3f} s; "
          f"CPU (user + sys) median {statistics.median(cpu):.3f} s")
    load = Path("/proc/loadavg")
    if load.is_file():
        print(f"load average while measuring: {load.read_text().split()[0]} (a busy machine stretches wall time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
