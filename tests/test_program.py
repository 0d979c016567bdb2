"""The folded network as one operator (centerface_flow.fused.program, kernels/program.cc): outputs identical to the
network run operator by operator, for any input size from one trace, padded inputs included; what cannot be traced
is refused; a damaged program is an error, not wrong numbers; the pynative runner uses it."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from centerface_flow import runtime
from centerface_flow.ops import native

pytestmark = pytest.mark.skipif(native.library_path() is None, reason="native kernel library not built")


def _folded(head_width=24, activation="relu", seed=3):
    import mindspore as ms
    from mindspore import nn

    from centerface_flow.fused.fold import fold_bn
    from centerface_flow.nets.centerface import CenterFace

    net = CenterFace(head_width, activation, init_seed=seed)
    rng = np.random.default_rng(seed)
    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.BatchNorm2d):
            n = cell.gamma.shape[0]
            cell.moving_mean.set_data(ms.Tensor(rng.normal(0, 0.2, n).astype(np.float32)))
            cell.moving_variance.set_data(ms.Tensor(rng.uniform(0.5, 1.5, n).astype(np.float32)))
    net.set_train(False)
    fold_bn(net)
    return net


@pytest.mark.parametrize(("head_width", "activation"), [(24, "relu"), (64, "relu6")])
def test_program_equals_the_network(head_width, activation):
    ms = runtime.mindspore("pynative")
    from centerface_flow.fused.program import NetworkProgram

    net = _folded(head_width, activation)
    program = NetworkProgram(net)
    rng = np.random.default_rng(0)
    # other sizes than the trace's, a batch of 2, a side that is not a multiple of 64
    for shape in [(1, 3, 96, 160), (2, 3, 64, 64), (1, 3, 160, 96), (1, 3, 224, 32)]:
        x = ms.Tensor(rng.uniform(0, 255, shape).astype(np.float32))
        expected = [o.asnumpy() for o in net(x)]
        got = [o.asnumpy() for o in program(x)]
        assert [g.shape for g in got] == [e.shape for e in expected]
        assert [program.output_shape(shape, i) for i in range(4)] == [list(e.shape) for e in expected]
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)


def test_batch_outputs_equal_one_by_one():
    """Each kernel runs a batch's images one after the other with the same thread split, so a batch's outputs are
    its images' own outputs bit for bit (docs/performance.md relies on it for infer's batch-1 choice)."""
    ms = runtime.mindspore("pynative")
    from centerface_flow.fused.program import NetworkProgram

    program = NetworkProgram(_folded())
    x = np.random.default_rng(1).uniform(0, 255, (3, 3, 96, 128)).astype(np.float32)
    together = [o.asnumpy() for o in program(ms.Tensor(x))]
    for i in range(len(x)):
        alone = [o.asnumpy() for o in program(ms.Tensor(x[i:i + 1]))]
        for t, a in zip(together, alone):
            np.testing.assert_array_equal(t[i:i + 1], a)


def test_block_weights_are_stored_as_panels():
    """The blocks' 1x1 weights go into the program packed as the kernels' panels (3-D), once; the other weights
    keep their layout."""
    runtime.mindspore("pynative")
    from centerface_flow.fused.program import _VERSION, trace

    traced = trace(_folded())
    words = traced.program
    assert words[0] == _VERSION
    n_names, n_weights = int(words[1]), int(words[5])
    pos = 6
    for _ in range(n_names):
        pos += 1 + int(words[pos])
    ndims = [int(words[pos + 6 * i + 1]) for i in range(n_weights)]
    # the stem block's projection, and the expansion and projection of each of the 16 blocks after it
    assert ndims.count(3) == 1 + 2 * 16
    assert set(ndims) <= {1, 3, 4}


def test_program_follows_the_valid_region():
    """set_valid_region changes the network's shared region parameter in place: the program reads it too."""
    ms = runtime.mindspore("pynative")
    from centerface_flow.fused.fold import set_valid_region
    from centerface_flow.fused.program import NetworkProgram

    net = _folded()
    program = NetworkProgram(net)
    x = np.zeros((1, 3, 128, 128), np.float32)
    x[:, :, :96, :100] = np.random.default_rng(1).uniform(0, 255, (1, 3, 96, 100))
    try:
        set_valid_region(net, (128, 128), (96, 100))
        expected = [o.asnumpy() for o in net(ms.Tensor(x))]
        got = [o.asnumpy() for o in program(ms.Tensor(x))]
    finally:
        set_valid_region(net, (128, 128), (128, 128))
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    plain = [o.asnumpy() for o in program(ms.Tensor(x))]
    assert any(not np.array_equal(p, g) for p, g in zip(plain, got))  # the region did matter


def test_untraceable_network_is_refused():
    ms = runtime.mindspore("pynative")
    from mindspore import nn, ops

    from centerface_flow.fused.program import TraceError, trace

    net = _folded()

    class Scaled(nn.Cell):  # a MindSpore operator after the kernels: not expressible as a program
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def construct(self, x):
            hm, wh, off, lm = self.inner(x)
            return ops.mul(hm, ms.Tensor(np.float32(2.0))), wh, off, lm

    with pytest.raises(TraceError, match="not produced by a kernel"):
        trace(Scaled(net))

    class Masked(nn.Cell):  # a kernel fed a plain tensor (not a parameter, not a kernel's output)
        def __init__(self):
            super().__init__()
            self.mask = native.mask_op()

        def construct(self, x):
            return self.mask(x, ms.Tensor(np.zeros(4, np.float32)))

    with pytest.raises(TraceError, match="neither a parameter nor the output of a kernel"):
        trace(Masked())


def test_damaged_program_is_an_error():
    ms = runtime.mindspore("pynative")
    from centerface_flow.fused.program import NetworkProgram

    net = _folded()
    program = NetworkProgram(net)
    x = ms.Tensor(np.zeros((1, 3, 64, 64), np.float32))
    words = program.program.asnumpy().copy()
    for damage in (lambda w: w.__setitem__(0, 99),           # unknown version
                   lambda w: w.__setitem__(7, ord("X")),     # a kernel name the library does not have
                   lambda w: w.__setitem__(slice(20, None), 0)):  # truncated operations
        broken = words.copy()
        damage(broken)
        program.program = ms.Tensor(broken)
        with pytest.raises(Exception):  # noqa: B017 - MindSpore raises RuntimeError or its own kernel errors
            [o.asnumpy() for o in program(x)]
    program.program = ms.Tensor(words)
    assert program(x)[0].asnumpy().shape == (1, 1, 16, 16)


def test_pynative_runner_runs_the_program(tmp_path):
    runtime.mindspore("pynative")
    from centerface_flow.checkpoint import ModelMeta, save_checkpoint
    from centerface_flow.inference.backends import make_runner
    from centerface_flow.nets.centerface import CenterFace

    net = CenterFace(24, "relu", init_seed=0)
    ckpt = tmp_path / "random.ckpt"
    save_checkpoint(ckpt, net, ModelMeta.released())
    runner = make_runner(ckpt, "mindspore", mode="pynative")
    assert "as one operator" in runner.description
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 96, 128)).astype(np.float32)
    assert [o.shape for o in runner(x)] == [(1, 1, 24, 32), (1, 2, 24, 32), (1, 2, 24, 32), (1, 10, 24, 32)]
    if sys.platform.startswith("linux"):  # MindSpore's spinning runtime threads yield to the kernels'
        policies = {}
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/comm", encoding="utf-8") as f:
                if f.read().startswith("ActorThread"):
                    policies[tid] = os.sched_getscheduler(int(tid))
        assert policies and set(policies.values()) == {os.SCHED_IDLE}, policies
        runtime.mindspore("graph")  # graph mode runs the graph on them: back to the normal policy
        assert {os.sched_getscheduler(int(tid)) for tid in policies} == {os.SCHED_OTHER}
        runtime.mindspore("pynative")
