"""Regenerate ``tiny_state.pth`` (written by real torch) and ``tiny_state_expected.npz`` (the same values in numpy).

Run with a Python that has torch (the project itself never needs it):
    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch
    /tmp/torchenv/bin/python tests/data/make_torch_fixture.py
"""
from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent


def main() -> None:
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(4, 5, generator=gen)
    shared = torch.arange(12, dtype=torch.float32)
    state = collections.OrderedDict()
    state["conv.weight"] = torch.randn(3, 2, 3, 3, generator=gen)
    state["bn.running_var"] = torch.rand(3, generator=gen, dtype=torch.float64)
    state["bn.num_batches_tracked"] = torch.tensor(17, dtype=torch.int64)
    state["half"] = torch.randn(2, 3, generator=gen).half()
    state["bf16"] = torch.tensor([1.5, -2.25, 3.0], dtype=torch.bfloat16)
    state["mask"] = torch.tensor([True, False, True])
    state["bytes"] = torch.arange(6, dtype=torch.uint8).reshape(2, 3)
    state["int32"] = torch.tensor([[-1, 2], [3, -4]], dtype=torch.int32)
    state["transposed"] = base.t()  # non-contiguous view, strides (1, 5)
    state["slice_a"] = shared[2:8:2]  # both slices share one storage, with offsets and a stride
    state["slice_b"] = shared[5:].view(7, 1)
    state["empty"] = torch.zeros(0, 3)
    state["param"] = torch.nn.Parameter(torch.full((2,), 0.5))
    torch.save(state, HERE / "tiny_state.pth")
    np.savez(HERE / "tiny_state_expected.npz", **{
        k: (v.detach().float().numpy() if v.dtype == torch.bfloat16 else v.detach().numpy()) for k, v in state.items()
    })


if __name__ == "__main__":
    main()
