"""Time every native kernel call of the folded inference network on its own: where a network call's time goes.

    .venv/bin/python benchmarks/bench_kernels.py [--size 640x480] [--runs 30] [--weights CKPT] [--threads N]
        [--library OTHER.so ...] [--only I ...]

The folded network (released weights, or ``--weights``) runs once in pynative mode at the given size while its
kernel calls are recorded (``centerface_flow.fused.program``'s recorder); each call is then repeated ``--runs``
times through ctypes on the same arrays, outside MindSpore. The table lists per call the kernel, its input and
output shapes, the median and minimum time, its multiply-adds and the GFLOP/s reached, and the sum over calls
(the network's kernel time without any framework work). Compare it with ``bench_inference.py``'s figure to see
the framework's share. ``--library`` adds builds of the kernel library to compare (A/B): each call is then timed
with every library in turn, run by run, so that all see the same machine load, and each gets a column of medians.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _on_cache_lines(a: np.ndarray) -> np.ndarray:
    """A copy of ``a`` whose data starts on a 64-byte boundary, as the one-operator network's tensors do
    (numpy's are 16-byte aligned, and the kernels' 64-byte loads and stores there span two cache lines)."""
    raw = np.empty(a.size + 16, np.float32)
    start = (-raw.ctypes.data % 64) // 4
    out = raw[start:start + a.size].reshape(a.shape)
    out[...] = a
    return out


def _macs(kernel: str, ins: list, outs: list) -> float:
    """Multiply-adds of one call, from its name and shapes (0 when unknown)."""
    x, y = ins[0], outs[0]
    n, cin, h, w = x.shape
    if kernel.startswith("CfIr"):
        ho, wo = y.shape[2:]
        cout = y.shape[1]
        if kernel.startswith("CfIrDw"):
            return n * (cin * ho * wo * 9 + cout * cin * ho * wo)
        e = ins[1].shape[0]
        return n * (e * cin * h * w + e * ho * wo * 9 + cout * e * ho * wo)
    if kernel.startswith("CfStem"):
        c, ho, wo = ins[1].shape[0], y.shape[2], y.shape[3]
        return n * ho * wo * (c * cin * 9 + c * 9 + y.shape[1] * c)
    if kernel.startswith("CfConv3x3Heads"):  # the convolution (as direct multiply-adds) and the heads
        c = ins[1].shape[0]
        return n * h * w * (c * cin * 9 + sum(o.shape[1] for o in outs) * c)
    if kernel.startswith("CfUpSum"):  # the transposed conv of x0 and the lateral 1x1 of x1, per output pixel
        c, c1 = ins[1].shape[1], ins[3].shape[1]
        return float(np.prod(y.shape)) * (cin + c1)
    total = 0.0
    for o in outs:
        k = cin if kernel.startswith("CfConvT") else int(np.prod(ins[1].shape[1:]))
        total += float(np.prod(o.shape)) * k
    return total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="640x480", help="WxH (default 640x480)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--weights", help="a checkpoint (default: the released weights, converted)")
    parser.add_argument("--threads", type=int, help="CENTERFACE_NUM_THREADS for the kernels")
    parser.add_argument("--only", type=int, nargs="*", help="time only these calls (0-based, in network order)")
    parser.add_argument("--library", action="append", default=[],
                        help="another build of the kernel library to time side by side (repeatable)")
    parser.add_argument("--stat", choices=["median", "min"], default="median",
                        help="per call, the median (default) or the minimum of the runs (steadier on a noisy VM)")
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["CENTERFACE_NUM_THREADS"] = str(args.threads)
    from centerface_flow import runtime

    ms = runtime.mindspore("pynative")
    from centerface_flow.checkpoint import load_network
    from centerface_flow.fused.fold import fold_bn
    from centerface_flow.fused.program import NetworkProgram, _recording, as_panels, panel_rows
    from centerface_flow.ops import native

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            weights = Path(tmp) / "released.ckpt"
            subprocess.run([sys.executable, "-m", "centerface_flow.cli", "convert", "released", "--out", str(weights)],
                           check=True, capture_output=True)
        net, _ = load_network(weights)
    fold_bn(net)
    w, h = (int(v) for v in args.size.split("x"))
    x_np = np.random.default_rng(0).random((1, 3, h, w), np.float32)
    x = ms.Tensor(x_np)
    calls, tensors = [], {}
    with _recording(calls, tensors):
        net(x)
    paths = [str(native.library_path()), *args.library]
    libs = [ctypes.CDLL(p) for p in paths]
    # Every selected call is checked once against the network's outputs, then timed: each run replays the calls in
    # network order, library by library, so that caches and the worker threads are as warm as in a network call
    # (a call repeated on its own, or after a Python check, runs on cold threads and reads as slower).
    prepared = []
    for index, (func, ins, outs) in enumerate(calls):
        if args.only and index not in args.only:
            continue
        kernel = func.rpartition(":")[2]
        plain = [_on_cache_lines(np.ascontiguousarray(t.asnumpy(), np.float32)) for t in ins]
        # the weights the kernels read as panels are passed so, as the one-operator network passes them (to a
        # library that takes panels: an older build gets MindSpore's layout)
        packed = [_on_cache_lines(as_panels(a, panel_rows(kernel, i))) if panel_rows(kernel, i) else a
                  for i, a in enumerate(plain)]
        results = [_on_cache_lines(np.empty(o.shape, np.float32)) for o in outs]
        fns, calls_args = [], []
        for which, lib in enumerate(libs):
            everything = (packed if hasattr(lib, "CfPanelRows") else plain) + results
            count = len(everything)
            params = (ctypes.c_void_p * count)(*[a.ctypes.data for a in everything])
            ndims = (ctypes.c_int * count)(*[a.ndim for a in everything])
            shape_arrays = [(ctypes.c_int64 * max(a.ndim, 1))(*a.shape) for a in everything]
            shapes = (ctypes.POINTER(ctypes.c_int64) * count)(
                *[ctypes.cast(s, ctypes.POINTER(ctypes.c_int64)) for s in shape_arrays])
            dtypes = (ctypes.c_char_p * count)(*[b"float32"] * count)
            fn = getattr(lib, kernel)
            fn.restype = ctypes.c_int
            status = fn(count, params, ndims, shapes, dtypes, None, None)
            if status:
                raise SystemExit(f"{paths[which]}: {kernel} returned {status}")
            for got, want in zip(results, outs):
                want = want.asnumpy()
                scale = float(np.abs(want).max()) or 1.0
                if float(np.abs(got - want).max()) > 1e-4 * scale:
                    raise SystemExit(f"{paths[which]}: call {index} ({kernel}) differs from the network's")
            fns.append(fn)
            calls_args.append((count, params, ndims, shapes, dtypes, shape_arrays, everything))
        prepared.append((index, kernel, plain, results, calls_args, fns))
    times = {(p[0], which): [] for p in prepared for which in range(len(libs))}
    # the installed library's whole network as one MindSpore operator, input tensor to numpy outputs, in the same
    # rounds: what it adds to the sum of its kernel calls is the framework's share
    program = None if args.only else NetworkProgram(net)
    whole = []
    clock = time.perf_counter
    for run in range(args.runs + 3):
        if program is not None:
            start = clock()
            _ = [o.asnumpy() for o in program(ms.from_numpy(x_np))]
            if run >= 3:
                whole.append(clock() - start)
        for which in range(len(libs)):
            for index, _, _, _, calls_args, fns in prepared:
                count, params, ndims, shapes, dtypes, _, _ = calls_args[which]
                start = clock()
                fns[which](count, params, ndims, shapes, dtypes, None, None)
                if run >= 3:
                    times[index, which].append(clock() - start)
    stat = min if args.stat == "min" else statistics.median
    rows = []
    for index, kernel, arrays, results, _, _ in prepared:
        medians = [1e3 * stat(times[index, which]) for which in range(len(libs))]
        macs = _macs(kernel, arrays, results)
        rows.append((index, kernel, "x".join(map(str, arrays[0].shape[1:])),
                     "x".join(map(str, results[0].shape[1:])), medians, macs / 1e6,
                     2 * macs / (medians[0] * 1e6) if macs else 0.0))
    first = "min ms" if args.stat == "min" else "med ms"
    labels = "".join(f" {first if i == 0 else f'lib{i} ms':>8}" for i in range(len(libs)))
    print(f"{'#':>2} {'kernel':22} {'in':>12} {'out':>12}{labels} {'MMAC':>7} {'GFLOP/s':>8}")
    for index, kernel, i, o, medians, mmac, gflops in rows:
        cols = "".join(f" {m:8.2f}" for m in medians)
        print(f"{index:2d} {kernel:22} {i:>12} {o:>12}{cols} {mmac:7.1f} {gflops:8.1f}")
    sums = "".join(f" {sum(r[4][i] for r in rows):8.2f}" for i in range(len(libs)))
    print(f"{'':2} {'sum':22} {'':>12} {'':>12}{sums} {sum(r[5] for r in rows):7.1f}")
    if program is not None:
        print(f"{'':2} {'network call (CfProgram)':22} {'':>12} {'':>12} {1e3 * stat(whole):8.2f}"
              "   (one MindSpore operator, installed library)")
    for i, p in enumerate(paths[1:], 1):
        print(f"lib{i}: {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
