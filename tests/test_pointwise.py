"""Native 1×1 convolution kernels (GEMM through OpenBLAS): the C++ library vs its numpy twins vs MindSpore's own
convolution, forward (with the inference epilogues) and gradients, as custom operators in graph and pynative mode."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from grad_check import input_and_weight_gradients

from centerface_flow import runtime
from centerface_flow.export import relative_error as _rel
from centerface_flow.ops import native, pointwise

TOL = 1e-5

pytestmark = pytest.mark.skipif(not pointwise.available(),
                                reason="native 1x1 kernels unavailable (library not built or scipy-openblas32 missing)")


def _cases(seed: int, count: int):
    """Random (N, Cin, Cout, H, W); 1-pixel planes, single channels and odd sizes included (the pixel split between
    threads is in blocks of 16, so sizes around 16·threads hit its edges). The last two fixed cases have more than 32
    input (forward) or output (input gradient) channels over more than 1 MB per image, which the kernels hand to
    OpenBLAS instead of their register tiles (UseTiles in kernels/pointwise.cc)."""
    rng = np.random.default_rng(seed)
    fixed = [(1, 1, 1, 1, 1), (2, 3, 5, 1, 7), (1, 16, 4, 4, 8), (3, 7, 2, 5, 7), (1, 24, 144, 12, 17),
             (1, 40, 13, 90, 75), (1, 13, 40, 90, 75)]
    drawn = [tuple(int(v) for v in (rng.integers(1, 4), rng.integers(1, 40), rng.integers(1, 40),
                                    rng.integers(1, 30), rng.integers(1, 30))) for _ in range(count)]
    return fixed + drawn


def _data(case, seed):
    n, cin, cout, h, w = case
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, cin, h, w)).astype(np.float32),
            rng.standard_normal((cout, cin, 1, 1)).astype(np.float32),
            rng.standard_normal(cout).astype(np.float32),
            rng.standard_normal((n, cout, h, w)).astype(np.float32))


def _call(name, inputs, shape):
    return native.call_kernel(name, inputs, shape)


def test_library_matches_numpy_twins():
    for i, case in enumerate(_cases(1, 12)):
        x, k, b, r = _data(case, i)
        y = pointwise.pw_forward(x, k)
        assert _rel(_call("CfPw", [x, k], y.shape), y) <= TOL, case
        for act in native.ACTIVATIONS:
            ref = pointwise.pw_forward(x, k, b, act)
            assert _rel(_call(f"CfPwBias{act.capitalize()}", [x, k, b], y.shape), ref) <= TOL, (case, act)
            ref = pointwise.pw_forward(x, k, b, act, r)
            assert _rel(_call(f"CfPwBias{act.capitalize()}Res", [x, k, b, r], y.shape), ref) <= TOL, (case, act)
        dy = r
        assert _rel(_call("CfPwBackInput", [x, k, dy], x.shape), pointwise.pw_back_input(k, dy)) <= TOL, case
        assert _rel(_call("CfPwBackWeight", [x, dy], k.shape), pointwise.pw_back_weight(x, dy)) <= TOL, case


def test_numpy_twin_gradients_are_the_adjoint():
    """<dy, W·x> is bilinear: its derivatives are exactly the twins' back_input / back_weight."""
    x, k, _, dy = _data((2, 5, 3, 4, 6), 3)
    eps = 1e-3
    lhs = float((pointwise.pw_forward(x, k).astype(np.float64) * dy).sum())
    dx = pointwise.pw_back_input(k, dy).astype(np.float64)
    dk = pointwise.pw_back_weight(x, dy).astype(np.float64)
    x2 = x + eps * np.sign(dx)
    assert float((pointwise.pw_forward(x2, k).astype(np.float64) * dy).sum()) - lhs == pytest.approx(
        eps * np.abs(dx).sum(), rel=1e-3)
    k2 = k + eps * np.sign(dk)
    assert float((pointwise.pw_forward(x, k2).astype(np.float64) * dy).sum()) - lhs == pytest.approx(
        eps * np.abs(dk).sum(), rel=1e-3)


def test_bad_shapes_are_refused():
    x = np.zeros((1, 3, 4, 4), np.float32)
    with pytest.raises(RuntimeError, match="returned 1"):
        _call("CfPw", [x, np.zeros((2, 4, 1, 1), np.float32)], (1, 2, 4, 4))  # Cin mismatch
    with pytest.raises(RuntimeError, match="returned 1"):
        _call("CfPw", [x, np.zeros((2, 3, 1, 1), np.float32)], (1, 3, 4, 4))  # wrong output
    with pytest.raises(RuntimeError, match="returned 1"):
        _call("CfPwBias", [x, np.zeros((2, 3, 1, 1), np.float32), np.zeros(3, np.float32)], (1, 2, 4, 4))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_custom_op_matches_mindspore(mode):
    """Forward and both gradients of the custom op vs ``ops.conv2d`` and the numpy twins; fused forms too."""
    ms = runtime.mindspore(mode)
    from mindspore import ops

    try:
        op = pointwise.pointwise_op()
        for i, case in enumerate(_cases(20, 3)):
            x, k, b, dy = _data(case, i)

            y = op(ms.Tensor(x), ms.Tensor(k)).asnumpy()
            assert _rel(y, ops.conv2d(ms.Tensor(x), ms.Tensor(k)).asnumpy()) <= TOL, case
            assert _rel(y, pointwise.pw_forward(x, k)) <= TOL, case
            dx, dk = input_and_weight_gradients(ms, mode, op, x, k, dy)
            dx_ms, dk_ms = input_and_weight_gradients(ms, mode, ops.conv2d, x, k, dy)
            assert _rel(dx, dx_ms) <= TOL and _rel(dx, pointwise.pw_back_input(k, dy)) <= TOL, case
            assert _rel(dk, dk_ms) <= TOL and _rel(dk, pointwise.pw_back_weight(x, dy)) <= TOL, case
            fused = pointwise.pointwise_op(bias=True, activation="relu6", residual=True)
            out = fused(ms.Tensor(x), ms.Tensor(k), ms.Tensor(b), ms.Tensor(dy)).asnumpy()
            assert _rel(out, pointwise.pw_forward(x, k, b, "relu6", dy)) <= TOL, case
    finally:
        runtime.mindspore("pynative")


def test_network_uses_native_pointwise_when_enabled(monkeypatch):
    runtime.mindspore("pynative")
    from centerface_flow.nets.centerface import CenterFace
    from centerface_flow.nets.pointwise import PointwiseConv

    for flag in ("1", "0"):
        monkeypatch.setenv(native.ENV, flag)
        net = CenterFace(24, "relu", init_seed=None)
        convs = [c for _, c in net.cells_and_names() if isinstance(c, PointwiseConv)]
        # 16 expansions + 17 projections in the backbone, 4 laterals in the neck
        assert len(convs) == 37 and all(c.use_native == (flag == "1") for c in convs)


def test_openblas_found():
    path = pointwise.openblas_path()
    assert path is not None and path.is_file()
    assert native.library_path() is not None


def test_heads_kernel_matches_numpy_twin():
    rng = np.random.default_rng(5)
    # the last: 40 channels over more than 1 MB, the OpenBLAS path (UseTiles in kernels/pointwise.cc)
    for n, c, h, w in [(1, 24, 12, 17), (2, 8, 1, 1), (1, 64, 30, 40), (1, 40, 90, 75)]:
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        heads = [(rng.standard_normal((rows, c, 1, 1)).astype(np.float32), rng.standard_normal(rows).astype(np.float32))
                 for rows in (1, 2, 2, 10)]
        refs = pointwise.heads_forward(x, heads)
        outs = native.call_kernel("CfHeads", [x, *[a for pair in heads for a in pair]], [r.shape for r in refs])
        for out, ref in zip(outs, refs):
            assert _rel(out, ref) <= TOL, (n, c, h, w)


def test_bad_heads_shapes_and_operator_arguments_are_refused():
    x = np.zeros((1, 4, 3, 3), np.float32)
    heads = [(np.zeros((rows, 4, 1, 1), np.float32), np.zeros(rows, np.float32)) for rows in (1, 2, 2, 10)]
    shapes = [(1, rows, 3, 3) for rows in (1, 2, 2, 10)]
    bad = [list(pair) for pair in heads]
    bad[2][0] = np.zeros((2, 5, 1, 1), np.float32)  # offset head weight for 5 input channels
    with pytest.raises(RuntimeError, match="returned 1"):
        native.call_kernel("CfHeads", [x, *[a for pair in bad for a in pair]], shapes)
    with pytest.raises(RuntimeError, match="returned 1"):  # landmarks output of the wrong size
        native.call_kernel("CfHeads", [x, *[a for pair in heads for a in pair]], [*shapes[:3], (1, 9, 3, 3)])
    runtime.mindspore("pynative")
    with pytest.raises(ValueError, match="need bias"):
        pointwise.pointwise_op(activation="relu")
    with pytest.raises(ValueError, match="activation"):
        pointwise.pointwise_op(bias=True, activation="tanh")


def test_kernels_report_a_missing_openblas(tmp_path):
    """Without a loadable OpenBLAS the GEMM kernel (the weight gradient) returns status 2 instead of crashing, and the
    register-tiled ones do not need it (fresh process: the library is looked up once per process)."""
    code = ("import numpy as np\n"
            "from centerface_flow.ops import native\n"
            "x, w = np.ones((1, 2, 3, 3), np.float32), np.ones((4, 2, 1, 1), np.float32)\n"
            "dy = np.ones((1, 4, 3, 3), np.float32)\n"
            "print(float(native.call_kernel('CfPw', [x, w], (1, 4, 3, 3)).sum()))\n"
            "try:\n"
            "    native.call_kernel('CfPwBackWeight', [x, dy], (4, 2, 1, 1))\n"
            "except RuntimeError as exc:\n"
            "    print(exc)\n")
    env = {**os.environ, pointwise.BLAS_ENV: str(tmp_path / "missing.so")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["72.0", "CfPwBackWeight", "returned", "2"]
