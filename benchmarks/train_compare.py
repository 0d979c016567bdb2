"""Training step throughput, MindSpore (ours, native kernels on / off) vs PyTorch eager (NCHW / channels-last).

Used by ``bench_train.py --compare-torch``; also runnable alone:

    .venv/bin/python benchmarks/train_compare.py [--batch 8] [--resolution 512] [--steps 4] [--torch-python PY]

Same architecture (model-zoo recipe: head width 64, ReLU6), same initial weights (the MindSpore network's,
copied into ``torch_centerface.py``), fp32, one fixed synthetic batch (random image, targets encoded from random
boxes with ``centerface_flow.data.targets.encode``) so that only the training step is measured: forward, loss,
backward, optimizer update (MindSpore: ``centerface_flow.training.train``'s jitted step with Adam and loss scale;
PyTorch:
Adam on an equivalent focal + L1 loss). Images/s = batch / median step time over ``--steps`` steps after the first
(which compiles / warms up). Each runtime runs in its own child process, one after the other; with ``--rounds R``
they take R turns and each keeps its best median (evens out load from other jobs on a shared machine).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_TORCH = "/tmp/torchenv/bin/python"


def _batch(n: int, resolution: int, seed: int = 0):
    import numpy as np

    from centerface_flow.data.targets import encode

    rng = np.random.default_rng(seed)
    out = resolution // 4
    image = rng.normal(0, 1, (n, 3, resolution, resolution)).astype(np.float32)
    targets = []
    for _ in range(n):
        k = int(rng.integers(3, 20))
        xy = rng.uniform(0, out - 8, (k, 2))
        wh = rng.uniform(2, 24, (k, 2))
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        lms = np.concatenate([xy[:, None, :] + rng.uniform(0, 1, (k, 5, 2)) * wh[:, None, :], np.ones((k, 5, 1))], 2)
        targets.append(encode(boxes, lms.astype(np.float32), (out, out)))
    keys = ("heatmap", "ind", "size", "weight", "offset", "hps_mask", "landmarks")
    return (image, *(np.stack([t[key] for t in targets]) for key in keys))


def mindspore_worker(args) -> dict:
    from centerface_flow import runtime
    from centerface_flow.ops import native

    ms = runtime.mindspore("graph")
    import numpy as np
    from mindspore import nn

    from centerface_flow.nets.centerface import CenterFace
    from centerface_flow.training.losses import CenterFaceLoss
    from centerface_flow.training.train import _step_function

    ms.set_seed(1)
    net = CenterFace(64, "relu6", init_seed=1)
    if args.params_out:
        np.savez(args.params_out, __activation__=np.array("relu6"),
                 **{p.name: p.asnumpy() for p in net.get_parameters()})
    net.set_train(True)
    optimizer = nn.Adam(net.trainable_params(), learning_rate=1e-4, weight_decay=5e-4)
    step = _step_function(net, CenterFaceLoss(), optimizer, 1024.0, 1)
    batch = [ms.Tensor(a) for a in _batch(args.batch, args.resolution)]
    times = []
    for i in range(args.steps + 1):
        start = time.perf_counter()
        loss, _, _ = step(*batch)
        float(loss.asnumpy())
        if i:
            times.append(time.perf_counter() - start)
    med = statistics.median(times)
    return {"median_step_s": med, "images_per_s": args.batch / med, "steps": len(times),
            "native": native.enabled(), "peak_rss_mb": _peak_rss_mb()}


def _peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports ru_maxrss in KB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--torch-python", default=DEFAULT_TORCH if Path(DEFAULT_TORCH).is_file() else "")
    parser.add_argument("--skip", nargs="*", default=[])
    parser.add_argument("--rounds", type=int, default=1, help="runtimes take turns; each keeps its best median")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--params-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(mindspore_worker(args)))
        return 0
    return compare(args)


def _child(cmd, env=None) -> dict | None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        print(f"  failed: {proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(args) -> int:
    """Run every runtime in a child process and print the table."""
    load_start = " ".join(f"{v:.2f}" for v in os.getloadavg())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        params = Path(tmp) / "params.npz"
        common = ["--batch", str(args.batch), "--resolution", str(args.resolution), "--steps", str(args.steps)]
        torch_ok = args.torch_python and subprocess.run([args.torch_python, "-c", "import torch"],
                                                        capture_output=True, check=False).returncode == 0
        if not torch_ok:
            print("PyTorch not importable by --torch-python; skipped")
        runs = [("mindspore (native kernels)", "1"), ("mindspore (MindSpore ops)", "0")]
        runs += [("torch eager channels-last", ["--channels-last"]), ("torch eager NCHW", [])] if torch_ok else []
        for round_index in range(args.rounds):
            for name, extra in runs:
                if any(s in name for s in args.skip):
                    continue
                print(f"round {round_index + 1}/{args.rounds}: {name} ...", flush=True)
                if name.startswith("mindspore"):
                    env = {**os.environ, "CENTERFACE_NATIVE_KERNELS": extra}
                    result = _child([sys.executable, __file__, "--worker", "--params-out", str(params), *common], env)
                elif params.is_file():  # the torch network loads the MindSpore network's initial weights
                    result = _child([args.torch_python, str(HERE / "torch_centerface.py"), "train", "--params",
                                     str(params), *common, *extra])
                else:
                    result = None
                if result and (name not in results or result["median_step_s"] < results[name]["median_step_s"]):
                    results[name] = result
    load_end = " ".join(f"{v:.2f}" for v in os.getloadavg())
    base = results.get("torch eager channels-last", {}).get("images_per_s")
    print(f"\n{'runtime':30s}{'s/step':>10s}{'images/s':>10s}{'x torch CL':>12s}{'peak RSS MB':>13s}")
    for name, r in results.items():
        ratio = f"{r['images_per_s'] / base:12.2f}" if base else f"{'-':>12s}"
        peak = f"{r['peak_rss_mb']:13.0f}" if "peak_rss_mb" in r else f"{'-':>13s}"
        print(f"{name:30s}{r['median_step_s']:10.2f}{r['images_per_s']:10.2f}{ratio}{peak}")
    print(f"\nbatch {args.batch}, {args.resolution}x{args.resolution}, fp32, median of {args.steps} steps after the "
          f"first, best of {args.rounds} round(s); load average {load_start} at start, {load_end} at end; {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
