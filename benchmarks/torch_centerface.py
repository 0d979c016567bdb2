"""A PyTorch re-implementation of our CenterFace network, for the side-by-side benchmarks only (not the package).

Runs under a separate interpreter that has torch (torch is not a project dependency), e.g.
``python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy``. The benchmarks call it as a
subprocess:

    python torch_centerface.py infer  --params P.npz --inputs X.npz --out Y.npz [--runs 10] [--channels-last]
    python torch_centerface.py train  --params P.npz --batch 8 --resolution 512 [--steps 6] [--channels-last]

``P.npz`` holds our MindSpore parameter names (``base.need_fp1.0.features.0.weight``, BatchNorm ``gamma`` /
``beta`` / ``moving_mean`` / ``moving_variance``; transposed conv weights (in, out, kh, kw) as in torch), so the
same weights run in both frameworks. Prints one JSON line with the timings.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from torch import nn

SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
TAPS = (1, 2, 4, 6)


def bn(ch, eps=1e-5, momentum=0.1):
    return nn.BatchNorm2d(ch, eps=eps, momentum=momentum)


class ConvBNAct(nn.Module):
    def __init__(self, cin, cout, k=3, s=1, groups=1, act=nn.ReLU):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False), bn(cout),
                                      act())

    def forward(self, x):
        return self.features(x)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, s, t, act):
        super().__init__()
        hidden = cin * t
        self.res = s == 1 and cin == cout
        layers = [ConvBNAct(cin, hidden, 1, act=act)] if t != 1 else []
        layers += [ConvBNAct(hidden, hidden, 3, s, hidden, act), nn.Conv2d(hidden, cout, 1, bias=False), bn(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class IDAUp(nn.Module):
    def __init__(self, out_dim, channel):
        super().__init__()
        self.up = nn.Sequential(nn.ConvTranspose2d(out_dim, out_dim, 2, 2, bias=False), bn(out_dim, 1e-3), nn.ReLU())
        self.conv = nn.Sequential(nn.Conv2d(channel, out_dim, 1, bias=False), bn(out_dim, 1e-3), nn.ReLU())

    def forward(self, x0, x1):
        return self.up(x0) + self.conv(x1)


class CenterFace(nn.Module):
    def __init__(self, head_width=24, activation="relu"):
        super().__init__()
        act = nn.ReLU if activation == "relu" else nn.ReLU6
        feats, groups, cin = [ConvBNAct(3, 32, 3, 2, act=act)], [], 32
        for index, (t, c, n, s) in enumerate(SETTING):
            for i in range(n):
                feats.append(InvertedResidual(cin, c, s if i == 0 else 1, t, act))
                cin = c
            if index in TAPS:
                groups.append(nn.Sequential(*feats))
                feats = []
        self.base = nn.ModuleDict({f"need_fp{i + 1}": g for i, g in enumerate(groups)})
        w = head_width
        self.dla_up = nn.ModuleDict({
            "conv": nn.Sequential(nn.Conv2d(320, w, 1, bias=False), bn(w, 1e-3), nn.ReLU()),
            "conv_last": nn.Sequential(nn.Conv2d(w, w, 3, 1, 1, bias=False), bn(w, 1e-5, 0.01), nn.ReLU()),
            "up1": IDAUp(w, 96), "up2": IDAUp(w, 32), "up3": IDAUp(w, 24)})
        self.hm_head = nn.Sequential(nn.Conv2d(w, 1, 1), nn.Sigmoid())
        self.wh_head, self.off_head, self.kps_head = nn.Conv2d(w, 2, 1), nn.Conv2d(w, 2, 1), nn.Conv2d(w, 10, 1)

    def forward(self, x):
        b = self.base
        x1 = b["need_fp1"](x)
        x2 = b["need_fp2"](x1)
        x3 = b["need_fp3"](x2)
        x4 = b["need_fp4"](x3)
        d = self.dla_up
        y = d["up3"](d["up2"](d["up1"](d["conv"](x4), x3), x2), x1)
        y = d["conv_last"](y)
        return self.hm_head(y), self.wh_head(y), self.off_head(y), self.kps_head(y)


_BN_NAMES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


def load_params(params: dict) -> CenterFace:
    """Build the network for the head width / activation implied by ``params`` and load them (names mapped)."""
    head_width = int(params["hm_head.0.weight"].shape[1])
    activation = str(params.get("__activation__", "relu"))
    net = CenterFace(head_width, activation)
    state = {}
    for name, value in params.items():
        if name.startswith("__"):
            continue
        prefix, leaf = name.rsplit(".", 1)
        state[f"{prefix}.{_BN_NAMES.get(leaf, leaf)}"] = torch.from_numpy(np.ascontiguousarray(value))
    own = net.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise SystemExit(f"parameters missing for the torch network: {missing[:5]}")
    net.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return net


def _load(path: str) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def infer(args) -> dict:
    net = load_params(_load(args.params)).eval()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    if args.compile:
        net = torch.compile(net)
    inputs = _load(args.inputs)
    if args.serve:  # bench_inference.py --interleave protocol (see its serve())
        import sys

        outputs = {}
        print("@@ ready", flush=True)
        with torch.inference_mode():
            for line in sys.stdin:
                key = line.strip()
                if key == "save":
                    np.savez(args.out, **{f"{k}/{i}": o for k, outs in outputs.items() for i, o in enumerate(outs)})
                    print("@@ saved", flush=True)
                    continue
                t = torch.from_numpy(inputs[key]).contiguous(memory_format=fmt)
                start = time.perf_counter()
                out = net(t)
                elapsed = time.perf_counter() - start
                outputs[key] = [o.contiguous().numpy() for o in out]
                print(f"@@ {elapsed:.6f}", flush=True)
        raise SystemExit(0)
    result, outputs = {}, {}
    with torch.inference_mode():
        for key, x in inputs.items():
            t = torch.from_numpy(x).contiguous(memory_format=fmt)
            for _ in range(args.warmup):
                net(t)
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                out = net(t)
                times.append(time.perf_counter() - start)
            result[key] = {"median_ms": 1e3 * statistics.median(times), "runs": len(times)}
            for i, o in enumerate(out):
                outputs[f"{key}/{i}"] = o.contiguous().numpy()
    np.savez(args.out, **outputs)
    return result


def train(args) -> dict:
    torch.manual_seed(0)
    net = load_params(_load(args.params)).train()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    n, r = args.batch, args.resolution
    x = torch.from_numpy(rng.uniform(-2, 2, (n, 3, r, r)).astype(np.float32)).contiguous(memory_format=fmt)
    hm_t = torch.from_numpy(rng.uniform(0, 1, (n, 1, r // 4, r // 4)).astype(np.float32) ** 8)
    reg_t = torch.from_numpy(rng.normal(0, 1, (n, 14, r // 4, r // 4)).astype(np.float32))
    mask = (hm_t > 0.9).float()

    def step():
        hm, wh, off, kps = net(x)
        hm = hm.clamp(1e-4, 1 - 1e-4)
        pos = (hm_t > 0.99).float()
        focal = -(pos * (1 - hm) ** 2 * torch.log(hm) + (1 - pos) * (1 - hm_t) ** 4 * hm ** 2 * torch.log(1 - hm))
        reg = torch.cat([wh, off, kps], 1)
        loss = focal.sum() / pos.sum().clamp(min=1) + (torch.abs(reg - reg_t) * mask).sum() / mask.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    times = []
    for i in range(args.steps + 1):
        start = time.perf_counter()
        step()
        if i:  # the first step allocates and warms caches
            times.append(time.perf_counter() - start)
    med = statistics.median(times)
    import resource

    return {"median_step_s": med, "images_per_s": n / med, "steps": len(times),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("infer", "train"))
    parser.add_argument("--params", required=True)
    parser.add_argument("--inputs")
    parser.add_argument("--out")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--serve", action="store_true", help="interleaved protocol of bench_inference.py")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = infer(args) if args.mode == "infer" else train(args)
    result.update(torch=torch.__version__, threads=torch.get_num_threads(), channels_last=args.channels_last,
                  compile=args.compile)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
