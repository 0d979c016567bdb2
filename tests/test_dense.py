"""Native dense 3×3 and 2×2 stride-2 transposed convolution kernels (stride-1 3×3 as register tiles, the others as
GEMMs through OpenBLAS; the stride-1 3×3 also for training, with both gradients): the C++ library vs its numpy twins
vs MindSpore's own operators, including valid regions of padded inputs, and as custom operators in graph and
pynative mode."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from grad_check import input_and_weight_gradients

from centerface_flow import runtime
from centerface_flow.export import relative_error as _rel
from centerface_flow.ops import dense, native, pointwise

TOL = 1e-5

pytestmark = pytest.mark.skipif(not dense.available(),
                                reason="native dense kernels unavailable (library not built or scipy-openblas32 missing)")


def _call(name, inputs, shape):
    return native.call_kernel(name, inputs, shape)


def _cases(seed: int, count: int):
    """Random (N, Cin, Cout, H, W) with 1-pixel sides, single channels and odd sizes."""
    rng = np.random.default_rng(seed)
    fixed = [(1, 1, 1, 1, 1), (2, 3, 5, 1, 7), (1, 3, 32, 9, 1), (3, 7, 2, 5, 6), (1, 24, 24, 13, 17),
             (1, 3, 8, 64, 41)]
    drawn = [tuple(int(v) for v in (rng.integers(1, 4), rng.integers(1, 30), rng.integers(1, 30),
                                    rng.integers(1, 40), rng.integers(1, 40))) for _ in range(count)]
    return fixed + drawn


def _data(case, seed, transposed=False):
    n, cin, cout, h, w = case
    rng = np.random.default_rng(seed)
    wshape = (cin, cout, 2, 2) if transposed else (cout, cin, 3, 3)
    return (rng.standard_normal((n, cin, h, w)).astype(np.float32), rng.standard_normal(wshape).astype(np.float32),
            rng.standard_normal(cout).astype(np.float32))


def _out(h: int, stride: int) -> int:
    return (h - 1) // stride + 1


def _regions(h: int, w: int, seed: int):
    """No padding, and a few (H0, W0, h0, w0) regions for a layer input at stride r = 1, 2, 4."""
    rng = np.random.default_rng(seed)
    out = [np.zeros(4, np.float32)]
    for r in (1, 2, 4):
        out.append(np.array([h * r, w * r, rng.integers(1, h * r + 1), rng.integers(1, w * r + 1)], np.float32))
    return out


@pytest.fixture(params=["default", "direct", "winograd"])
def conv3x3_method(request, monkeypatch):
    """Both ways the stride-1 kernel computes: directly, or by Winograd's F(2x2, 3x3) (the default from 8 input and
    8 output channels on); CENTERFACE_CONV3X3 forces either and is read on every call."""
    if request.param == "default":
        monkeypatch.delenv("CENTERFACE_CONV3X3", raising=False)
    else:
        monkeypatch.setenv("CENTERFACE_CONV3X3", request.param)
    return request.param


def test_conv3x3_library_matches_numpy_twin(conv3x3_method):
    for i, case in enumerate(_cases(1, 10)):
        x, k, b = _data(case, i)
        n, _, cout, h, w = case
        for stride in (1, 2):
            shape = (n, cout, _out(h, stride), _out(w, stride))
            for region in _regions(h, w, i):
                for act in native.ACTIVATIONS:
                    ref = dense.conv3x3_forward(x, k, stride, b, act, region)
                    got = _call(f"CfConv3x3S{stride}Bias{act.capitalize()}Valid", [x, k, b, region], shape)
                    assert _rel(got, ref) <= TOL, (case, stride, region, act)


def test_convt2x2_library_matches_numpy_twin():
    for i, case in enumerate(_cases(2, 10)):
        x, k, b = _data(case, i, transposed=True)
        n, _, cout, h, w = case
        for act in dense.CONVT_ACTIVATIONS:
            ref = dense.convt2x2_forward(x, k, b, act)
            got = _call(f"CfConvT2x2S2Bias{act.capitalize()}", [x, k, b], (n, cout, 2 * h, 2 * w))
            assert _rel(got, ref) <= TOL, (case, act)


def test_valid_region_equals_unpadded(conv3x3_method):
    """A bottom/right zero-padded input with garbage past the image gives the unpadded outputs, zeros elsewhere."""
    rng = np.random.default_rng(5)
    for stride in (1, 2):
        x, k, b = _data((2, 6, 5, 11, 9), 5)
        big = rng.standard_normal((2, 6, 16, 16)).astype(np.float32)  # garbage in the padded region
        big[:, :, :11, :9] = x
        # the layer input is at stride 4 of a 64 x 64 network input around a 41 x 36 image: 11 x 9 valid
        region = np.array([64, 64, 41, 36], np.float32)
        shape = (2, 5, _out(16, stride), _out(16, stride))
        got = _call(f"CfConv3x3S{stride}BiasReluValid", [big, k, b, region], shape)
        ref = dense.conv3x3_forward(x, k, stride, b, "relu")
        vh, vw = ref.shape[2:]
        assert _rel(got[:, :, :vh, :vw], ref) <= TOL, stride
        assert not got[:, :, vh:].any() and not got[:, :, :, vw:].any(), stride


def _heads(cin: int, seed: int):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((rows, cin, 1, 1)).astype(np.float32), rng.standard_normal(rows).astype(np.float32))
            for rows in (1, 2, 2, 10)]


def test_conv3x3_heads_equals_conv_then_heads(monkeypatch):
    """The neck's conv_last + ReLU with the four heads in one call gives exactly what the convolution kernel and then
    the heads kernel give (the convolution by Winograd either way), and their numpy twins' values: odd sizes, rows
    and columns outside the valid region (the heads of a zero input, their biases), two images."""
    for i, case in enumerate([(1, 24, 24, 13, 17), (2, 8, 12, 9, 40), (1, 16, 24, 40, 37), (1, 24, 24, 2, 1)]):
        x, k, b = _data(case, 40 + i)
        n, _, cout, h, w = case
        heads = _heads(cout, i)
        shapes = [(n, hw.shape[0], h, w) for hw, _ in heads]
        flat = [a for pair in heads for a in pair]
        for region in _regions(h, w, i):
            got = _call("CfConv3x3HeadsReluValid", [x, k, b, region, *flat], shapes)
            monkeypatch.setenv("CENTERFACE_CONV3X3", "winograd")
            conv = _call("CfConv3x3S1BiasReluValid", [x, k, b, region], (n, cout, h, w))
            apart = _call("CfHeads", [conv, *flat], shapes)
            refs = dense.conv3x3_heads_forward(x, k, b, region, heads)
            for g, a, r in zip(got, apart, refs):
                assert np.array_equal(g, a), (case, region)
                assert _rel(g, r) <= TOL, (case, region)


def _turned(k: np.ndarray) -> np.ndarray:
    """The kernel of the stride-1 input gradient: (Cin, Cout, 3, 3), rotated by 180 degrees."""
    return np.ascontiguousarray(k.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])


def test_conv3x3_training_kernels_match_numpy_twins(conv3x3_method):
    """The training forward (no bias), the input gradient and the weight gradient of the 3×3 convolution, stride 1
    and 2, vs numpy, and the three against each other: <dy, conv(x, w)> = <dx, x> = <dw, w> for dx, dw the gradients
    of that sum (1-pixel maps, one channel, odd sizes, several images, 64 channels as in the model-zoo neck; the
    stride-1 input gradient is also the forward convolution with the kernel turned around)."""
    for stride in (1, 2):
        for i, case in enumerate(_cases(70, 2) + [(2, 64, 64, 20, 24)]):
            x, k, _ = _data(case, 70 + i)
            n, cin, cout, h, w = case
            ho, wo = _out(h, stride), _out(w, stride)
            dy = np.random.default_rng(i).standard_normal((n, cout, ho, wo)).astype(np.float32)
            y = _call(f"CfConv3x3S{stride}", [x, k], (n, cout, ho, wo))
            dx = _call(f"CfConv3x3S{stride}BackInput", [dy, k] + ([x] if stride == 2 else []), (n, cin, h, w))
            dk = _call(f"CfConv3x3S{stride}BackWeight", [x, dy], (cout, cin, 3, 3))
            ref_y = dense.conv3x3_forward(x, k, stride)
            ref_dx = dense.conv3x3_back_input(dy, k, x.shape, stride)
            ref_dk = dense.conv3x3_back_weight(x, dy, stride)
            assert _rel(y, ref_y) <= TOL and _rel(dx, ref_dx) <= TOL and _rel(dk, ref_dk) <= TOL, (stride, case)
            if stride == 1:
                assert _rel(ref_dx, dense.conv3x3_forward(dy, _turned(k), 1)) <= TOL, case
            inner = [float(np.vdot(a.astype(np.float64), b)) for a, b in ((dy, ref_y), (ref_dx, x), (ref_dk, k))]
            assert np.allclose(inner[1:], inner[0], rtol=1e-6, atol=1e-6), (stride, case)  # twins round to float32


def test_convt2x2_training_kernels_match_numpy_twins():
    """The transposed convolution's training forward (no bias) and both gradients vs numpy, and against each other
    (<dy, T(x)> = <dx, x> = <dw, w>): single pixels and channels, odd sizes, bands of rows, several images."""
    for i, case in enumerate(_cases(80, 2) + [(2, 64, 64, 40, 24)]):
        x, k, _ = _data(case, 80 + i, transposed=True)
        n, cin, cout, h, w = case
        dy = np.random.default_rng(i).standard_normal((n, cout, 2 * h, 2 * w)).astype(np.float32)
        y = _call("CfConvT2x2S2", [x, k], (n, cout, 2 * h, 2 * w))
        dx = _call("CfConvT2x2S2BackInput", [dy, k], (n, cin, h, w))
        dk = _call("CfConvT2x2S2BackWeight", [x, dy], (cin, cout, 2, 2))
        ref_y, ref_dx, ref_dk = dense.convt2x2_forward(x, k), dense.convt2x2_back_input(dy, k), \
            dense.convt2x2_back_weight(x, dy)
        assert _rel(y, ref_y) <= TOL and _rel(dx, ref_dx) <= TOL and _rel(dk, ref_dk) <= TOL, case
        inner = [float(np.vdot(a.astype(np.float64), b)) for a, b in ((dy, ref_y), (ref_dx, x), (ref_dk, k))]
        assert np.allclose(inner[1:], inner[0], rtol=1e-6, atol=1e-6), case  # the twins round to float32


_WEIGHT_GRADIENTS = r"""
import sys
import numpy as np
from centerface_flow.ops import dense, native
assert dense.available()
rng = np.random.default_rng(0)
x = rng.standard_normal((3, 16, 20, 18)).astype(np.float32)
grads = [native.call_kernel("CfConv3x3S1BackWeight", [x, rng.standard_normal((3, 8, 20, 18)).astype(np.float32)],
                            (8, 16, 3, 3)),
         native.call_kernel("CfConv3x3S2BackWeight", [x, rng.standard_normal((3, 8, 10, 9)).astype(np.float32)],
                            (8, 16, 3, 3)),
         native.call_kernel("CfConvT2x2S2BackWeight", [x, rng.standard_normal((3, 8, 40, 36)).astype(np.float32)],
                            (16, 8, 2, 2))]
np.savez(sys.argv[1], *grads)
"""


def test_training_weight_gradients_do_not_depend_on_the_thread_count(tmp_path):
    """The weight gradients sum one product per image (and band of rows) in a fixed order, so 1, 2 or 3 kernel
    threads give the same bits (a resumed or rescheduled training run on another machine computes the same step)."""
    results = []
    for threads in (1, 2, 3):
        out = tmp_path / f"{threads}.npz"
        subprocess.run([sys.executable, "-c", _WEIGHT_GRADIENTS, str(out)], check=True, timeout=300,
                       env={**os.environ, "CENTERFACE_NUM_THREADS": str(threads)})
        with np.load(out) as grads:
            results.append([grads[k] for k in sorted(grads.files)])
    for other in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(results[0], other))


def test_training_kernels_report_a_missing_openblas(tmp_path):
    """Without a loadable OpenBLAS the training kernels that make GEMMs return status 2 instead of crashing, and the
    stride-1 forward (register tiles) does not need it (fresh process: the library is looked up once)."""
    code = ("import numpy as np\n"
            "from centerface_flow.ops import native\n"
            "x, k, kt = np.ones((1, 2, 4, 4), np.float32), np.ones((3, 2, 3, 3), np.float32), "
            "np.ones((2, 3, 2, 2), np.float32)\n"
            "dy1, dy2, dyt = (np.ones(s, np.float32) for s in ((1, 3, 4, 4), (1, 3, 2, 2), (1, 3, 8, 8)))\n"
            "print(float(native.call_kernel('CfConv3x3S1', [x, k], (1, 3, 4, 4)).sum()))\n"
            "for name, inputs, shape in (('CfConv3x3S1BackWeight', [x, dy1], (3, 2, 3, 3)),\n"
            "                            ('CfConv3x3S2', [x, k], (1, 3, 2, 2)),\n"
            "                            ('CfConv3x3S2BackInput', [dy2, k, x], (1, 2, 4, 4)),\n"
            "                            ('CfConv3x3S2BackWeight', [x, dy2], (3, 2, 3, 3)),\n"
            "                            ('CfConvT2x2S2', [x, kt], (1, 3, 8, 8)),\n"
            "                            ('CfConvT2x2S2BackInput', [dyt, kt], (1, 2, 4, 4)),\n"
            "                            ('CfConvT2x2S2BackWeight', [x, dyt], (2, 3, 2, 2))):\n"
            "    try:\n"
            "        native.call_kernel(name, inputs, shape)\n"
            "    except RuntimeError as exc:\n"
            "        print(exc)\n")
    env = {**os.environ, pointwise.BLAS_ENV: str(tmp_path / "missing.so")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    lines = out.stdout.splitlines()
    # all-ones input and kernel: each output is 2 channels x its in-image taps; the 4x4 image has 10 x 10 of them
    assert lines[0] == str(3 * 2 * 10.0 * 10)
    assert lines[1:] == [f"{name} returned 2" for name in (
        "CfConv3x3S1BackWeight", "CfConv3x3S2", "CfConv3x3S2BackInput", "CfConv3x3S2BackWeight", "CfConvT2x2S2",
        "CfConvT2x2S2BackInput", "CfConvT2x2S2BackWeight")]


def test_operators_say_when_the_dense_kernels_cannot_run(monkeypatch):
    """Every operator factory refuses, naming what is missing, where the library or OpenBLAS is not there (the
    factories are cached: their undecorated forms are called)."""
    runtime.mindspore("pynative")
    monkeypatch.setattr(dense, "available", lambda: False)
    for make in (lambda: dense.conv3x3_op.__wrapped__(1), lambda: dense.conv3x3_train_op.__wrapped__(2),
                 dense.convt2x2_train_op.__wrapped__, dense.conv3x3_heads_op.__wrapped__, dense.upsum_op.__wrapped__,
                 dense.convt2x2_op.__wrapped__):
        with pytest.raises(RuntimeError, match="native dense kernels unavailable"):
            make()


def test_training_operators_refuse_a_stride_they_do_not_have():
    runtime.mindspore("pynative")
    with pytest.raises(ValueError, match="stride must be 1 or 2"):
        dense.conv3x3_train_op(3)


def test_convt2x2_training_kernels_refuse_bad_shapes():
    x, k = np.zeros((2, 3, 5, 6), np.float32), np.zeros((3, 4, 2, 2), np.float32)
    dy = np.zeros((2, 4, 10, 12), np.float32)
    for name, inputs, shape in (("CfConvT2x2S2", [x, np.zeros((4, 3, 2, 2), np.float32)], (2, 4, 10, 12)),  # layout
                                ("CfConvT2x2S2", [x, k], (2, 4, 10, 11)),  # output not twice the input
                                ("CfConvT2x2S2BackInput", [dy[:, :, :9], k], (2, 3, 5, 6)),  # dy of an odd size
                                ("CfConvT2x2S2BackInput", [dy, np.zeros((3, 4, 3, 3), np.float32)], (2, 3, 5, 6)),
                                ("CfConvT2x2S2BackWeight", [x, dy[:1]], (3, 4, 2, 2)),  # dy of another batch
                                ("CfConvT2x2S2BackWeight", [x, dy], (4, 3, 2, 2))):  # dw as (Cout, Cin)
        with pytest.raises(RuntimeError, match="returned 3"):
            _call(name, inputs, shape)
    for name in ("CfConvT2x2S2", "CfConvT2x2S2BackInput", "CfConvT2x2S2BackWeight"):
        with pytest.raises(RuntimeError, match="returned 1"):  # an input missing
            _call(name, [x], (2, 4, 10, 12))


def test_conv3x3_training_kernels_refuse_bad_shapes():
    x, k = np.zeros((2, 3, 5, 6), np.float32), np.zeros((4, 3, 3, 3), np.float32)
    dy = np.zeros((2, 4, 5, 6), np.float32)
    for name, inputs, shape in (("CfConv3x3S1", [x, np.zeros((4, 5, 3, 3), np.float32)], (2, 4, 5, 6)),  # Cin
                                ("CfConv3x3S1", [x, np.zeros((4, 3, 1, 1), np.float32)], (2, 4, 5, 6)),  # not 3x3
                                ("CfConv3x3S1", [x, k], (2, 4, 3, 3)),  # output of another size (stride 2)
                                ("CfConv3x3S1BackInput", [x, k], (2, 3, 5, 6)),  # dy with Cin channels
                                ("CfConv3x3S1BackInput", [dy, k], (2, 4, 5, 6)),  # dx with Cout channels
                                ("CfConv3x3S1BackWeight", [x, dy[:1]], (4, 3, 3, 3)),  # dy of another batch
                                ("CfConv3x3S1BackWeight", [x, dy[:, :, :4]], (4, 3, 3, 3)),  # dy of another size
                                ("CfConv3x3S1BackWeight", [x, dy], (3, 4, 3, 3))):  # dw as (Cin, Cout)
        with pytest.raises(RuntimeError, match="returned 3"):
            _call(name, inputs, shape)
    for name in ("CfConv3x3S1", "CfConv3x3S1BackInput", "CfConv3x3S1BackWeight", "CfConv3x3S2",
                 "CfConv3x3S2BackWeight"):
        with pytest.raises(RuntimeError, match="returned 1"):  # an input missing
            _call(name, [x], (2, 4, 5, 6))
    dy2 = np.zeros((2, 4, 3, 3), np.float32)
    for name, inputs, shape in (("CfConv3x3S2", [x, k], (2, 4, 5, 6)),  # the stride-1 output size
                                ("CfConv3x3S2BackInput", [dy2, k, x[:, :, :4]], (2, 3, 4, 6)),  # H gives Ho = 2
                                ("CfConv3x3S2BackInput", [dy2, k, x], (2, 3, 5, 5)),  # dx not shaped as x
                                ("CfConv3x3S2BackWeight", [x, dy], (4, 3, 3, 3))):  # dy of the stride-1 size
        with pytest.raises(RuntimeError, match="returned 3"):
            _call(name, inputs, shape)
    with pytest.raises(RuntimeError, match="returned 1"):  # the input gradient without x
        _call("CfConv3x3S2BackInput", [dy2, k], (2, 3, 5, 6))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_conv3x3_train_op_gradients_match_mindspore(mode):
    """The training operators' forward and both gradients vs ``ops.conv2d`` (padding 1, stride 1 and 2) under
    ``ms.grad``."""
    ms = runtime.mindspore(mode)
    from mindspore import ops

    try:
        for i, (stride, case) in enumerate([(1, (2, 5, 7, 9, 13)), (1, (1, 16, 24, 12, 10)), (1, (1, 1, 1, 1, 1)),
                                            (2, (2, 3, 8, 9, 12)), (2, (1, 4, 5, 1, 1))]):
            op = dense.conv3x3_train_op(stride)
            x, k, _ = _data(case, 90 + i)
            n, _, cout, h, w = case
            dy = np.random.default_rng(i).standard_normal((n, cout, _out(h, stride), _out(w, stride))).astype(
                np.float32)

            def theirs(xx, kk):  # graph mode compiles it in this iteration: late binding is fine
                return ops.conv2d(xx, kk, stride=stride, pad_mode="pad", padding=1)  # noqa: B023

            y = op(ms.Tensor(x), ms.Tensor(k)).asnumpy()
            assert _rel(y, dense.conv3x3_forward(x, k, stride)) <= TOL, case
            for got, want in zip(input_and_weight_gradients(ms, mode, op, x, k, dy),
                                 input_and_weight_gradients(ms, mode, theirs, x, k, dy)):
                assert _rel(got, want) <= TOL, case
    finally:
        runtime.mindspore("pynative")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_convt2x2_train_op_gradients_match_mindspore(mode):
    """The transposed convolution's training operator, forward and both gradients, vs ``nn.Conv2dTranspose``."""
    ms = runtime.mindspore(mode)
    from mindspore import nn

    try:
        op = dense.convt2x2_train_op()
        for i, (n, cin, cout, h, w) in enumerate([(2, 5, 7, 9, 13), (1, 16, 24, 6, 10), (1, 1, 1, 1, 1)]):
            x, k, _ = _data((n, cin, cout, h, w), 95 + i, transposed=True)
            dy = np.random.default_rng(i).standard_normal((n, cout, 2 * h, 2 * w)).astype(np.float32)
            cell = nn.Conv2dTranspose(cin, cout, kernel_size=2, stride=2, has_bias=False)

            def theirs(xx, kk):  # graph mode compiles it in this iteration: late binding is fine
                return cell.conv2d_transpose(xx, kk, (n, cout, 2 * h, 2 * w))  # noqa: B023

            assert _rel(op(ms.Tensor(x), ms.Tensor(k)).asnumpy(), dense.convt2x2_forward(x, k)) <= TOL
            for got, want in zip(input_and_weight_gradients(ms, mode, op, x, k, dy),
                                 input_and_weight_gradients(ms, mode, theirs, x, k, dy)):
                assert _rel(got, want) <= TOL, (n, cin, cout, h, w)
    finally:
        runtime.mindspore("pynative")


def test_network_uses_native_dense_convolutions_when_enabled(monkeypatch):
    """The stem, the neck's conv_last and its three transposed convolutions are the native training convolutions
    when the native kernels are on, MindSpore's otherwise; the same parameters either way."""
    runtime.mindspore("pynative")
    from centerface_flow.nets.centerface import CenterFace
    from centerface_flow.nets.dense import Conv3x3, ConvTranspose2x2

    for flag in ("1", "0"):
        monkeypatch.setenv(native.ENV, flag)
        net = CenterFace(24, "relu", init_seed=None)
        convs = [c for _, c in net.cells_and_names() if isinstance(c, (Conv3x3, ConvTranspose2x2))]
        names = ["base.need_fp1.0.features.0.weight", "dla_up.conv_last.0.weight"] + [
            f"dla_up.up{i}.up.0.weight" for i in (1, 2, 3)]
        assert sorted(c.weight.name for c in convs) == sorted(names)
        assert all(c.use_native == (flag == "1") for c in convs)


def test_conv3x3_heads_bad_shapes_are_refused():
    x, k, b = _data((1, 8, 8, 5, 6), 0)
    heads = [a for pair in _heads(8, 0) for a in pair]
    shapes = [(1, rows, 5, 6) for rows in (1, 2, 2, 10)]
    region = np.zeros(4, np.float32)
    with pytest.raises(RuntimeError, match="returned 3"):  # a head's weight for another channel count
        _call("CfConv3x3HeadsReluValid", [x, k, b, region, np.zeros((1, 7, 1, 1), np.float32), *heads[1:]], shapes)
    with pytest.raises(RuntimeError, match="returned 3"):  # a head's output of the wrong size
        _call("CfConv3x3HeadsReluValid", [x, k, b, region, *heads], [*shapes[:3], (1, 10, 5, 5)])
    with pytest.raises(RuntimeError, match="returned 5"):  # region that does not fit the tensor
        _call("CfConv3x3HeadsReluValid", [x, k, b, np.array([20, 20, 19, 19], np.float32), *heads], shapes)
    with pytest.raises(RuntimeError, match="returned 1"):  # a head missing
        _call("CfConv3x3HeadsReluValid", [x, k, b, region, *heads[:-2]], shapes[:3])
    wide = np.zeros((30, 8, 1, 1), np.float32)  # 1 + 2 + 2 + 30 head rows: more than the kernel stacks (32)
    with pytest.raises(RuntimeError, match="returned 3"):
        _call("CfConv3x3HeadsReluValid", [x, k, b, region, *heads[:-2], wide, np.zeros(30, np.float32)],
              [*shapes[:3], (1, 30, 5, 6)])


def test_upsum_matches_numpy_twin():
    """An IDA-up node in one call (2x2 stride-2 transposed conv + ReLU of x0, plus the lateral 1x1 conv + ReLU of
    x1): rows of x0 that are not a multiple of the 16-pixel tiles, 1-pixel maps, channel counts that are not
    multiples of the register tiles, two images; and exactly what it computes in the network, the transposed conv
    kernel then the lateral kernel with its residual, within rounding."""
    for i, (n, c0, c, c1, h, w) in enumerate([(1, 24, 24, 24, 60, 80), (2, 5, 7, 13, 3, 37), (1, 3, 1, 2, 1, 1),
                                               (1, 24, 24, 32, 13, 16), (1, 16, 30, 9, 2, 17)]):
        rng = np.random.default_rng(60 + i)
        x0 = rng.standard_normal((n, c0, h, w)).astype(np.float32)
        x1 = rng.standard_normal((n, c1, 2 * h, 2 * w)).astype(np.float32)
        wt, bt = rng.standard_normal((c0, c, 2, 2)).astype(np.float32), rng.standard_normal(c).astype(np.float32)
        wl, bl = rng.standard_normal((c, c1, 1, 1)).astype(np.float32), rng.standard_normal(c).astype(np.float32)
        shape = (n, c, 2 * h, 2 * w)
        got = _call("CfUpSumRelu", [x0, wt, bt, x1, wl, bl], shape)
        assert _rel(got, dense.upsum_forward(x0, wt, bt, x1, wl, bl)) <= TOL, (n, c0, c, c1, h, w)
        up = _call("CfConvT2x2S2BiasRelu", [x0, wt, bt], shape)
        apart = _call("CfPwBiasReluRes", [x1, wl, bl, up], shape)
        assert _rel(got, apart) <= TOL, (n, c0, c, c1, h, w)


def test_upsum_bad_shapes_are_refused():
    x0, x1 = np.zeros((1, 4, 3, 5), np.float32), np.zeros((1, 6, 6, 10), np.float32)
    wt, bt, wl, bl = (np.zeros((4, 2, 2, 2), np.float32), np.zeros(2, np.float32), np.zeros((2, 6, 1, 1), np.float32),
                      np.zeros(2, np.float32))
    shape = (1, 2, 6, 10)
    for inputs, out in (([x0, wt, bt, x1[:, :, :5], wl, bl], shape),  # x1 not twice x0's size
                        ([x0, np.zeros((2, 4, 2, 2), np.float32), bt, x1, wl, bl], shape),  # (Cout, Cin) layout
                        ([x0, wt, bt, x1, np.zeros((2, 5, 1, 1), np.float32), bl], shape),  # lateral for 5 channels
                        ([x0, wt, bt, x1, wl, bl], (1, 2, 6, 9))):  # wrong output size
        with pytest.raises(RuntimeError, match="returned 3"):
            _call("CfUpSumRelu", inputs, out)
    with pytest.raises(RuntimeError, match="returned 1"):
        _call("CfUpSumRelu", [x0, wt, bt, x1, wl], shape)


@pytest.mark.parametrize("tiles", ["wide", "narrow"])
def test_register_tiles_of_both_widths(tiles):
    """The stride-1 3×3 convolution's register tiles follow the CPU (CENTERFACE_TILES forces either width, so both
    are checked on any CPU, in a child process)."""
    env = {**os.environ, "CENTERFACE_TILES": tiles}
    tests = ("conv3x3_library_matches_numpy_twin or valid_region_equals_unpadded or conv3x3_heads_equals_conv_then_heads"
             " or upsum_matches_numpy_twin or conv3x3_training_kernels_match_numpy_twins")
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", tests],
                         env=env, capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "11 passed" in res.stdout, res.stdout[-2000:]


def test_bad_shapes_are_refused():
    x = np.zeros((1, 3, 4, 4), np.float32)
    k, b, region = np.zeros((2, 3, 3, 3), np.float32), np.zeros(2, np.float32), np.zeros(4, np.float32)
    for inputs, shape in (([x, np.zeros((2, 4, 3, 3), np.float32), b, region], (1, 2, 4, 4)),  # Cin mismatch
                          ([x, np.zeros((2, 3, 1, 1), np.float32), b, region], (1, 2, 4, 4)),  # not 3x3
                          ([x, k, np.zeros(3, np.float32), region], (1, 2, 4, 4)),  # bias size
                          ([x, k, b, region], (1, 2, 2, 2))):  # wrong output for stride 1
        with pytest.raises(RuntimeError, match="returned 3"):
            _call("CfConv3x3S1BiasValid", inputs, shape)
    with pytest.raises(RuntimeError, match="returned 5"):  # region that does not fit the tensor
        _call("CfConv3x3S1BiasValid", [x, k, b, np.array([6, 6, 5, 5], np.float32)], (1, 2, 4, 4))
    with pytest.raises(RuntimeError, match="returned 1"):  # missing region
        _call("CfConv3x3S1BiasValid", [x, k, b], (1, 2, 4, 4))
    kt = np.zeros((3, 2, 2, 2), np.float32)
    with pytest.raises(RuntimeError, match="returned 3"):
        _call("CfConvT2x2S2Bias", [x, kt, b], (1, 2, 8, 7))
    with pytest.raises(RuntimeError, match="returned 3"):
        _call("CfConvT2x2S2Bias", [x, np.zeros((2, 3, 2, 2), np.float32), b], (1, 2, 8, 8))  # (Cout, Cin) layout


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_custom_ops_match_mindspore(mode):
    """The custom operators vs ``ops.conv2d`` / ``nn.Conv2dTranspose`` (+ bias, ReLU) and the numpy twins."""
    ms = runtime.mindspore(mode)
    from mindspore import nn, ops

    try:
        for i, case in enumerate(_cases(20, 2)):
            x, k, b = _data(case, i)
            _, cin, cout, _, _ = case
            for stride in (1, 2):
                op = dense.conv3x3_op(stride, "relu")

                def ours(xx, kk, bb, rr, op=op):
                    return op(xx, kk, bb, rr)

                def theirs(xx, kk, bb, stride=stride):
                    return ops.relu(ops.bias_add(ops.conv2d(xx, kk, None, stride, "pad", 1), bb))

                if mode == "graph":
                    ours, theirs = ms.jit(ours), ms.jit(theirs)
                got = ours(ms.Tensor(x), ms.Tensor(k), ms.Tensor(b), ms.Tensor(np.zeros(4, np.float32))).asnumpy()
                assert _rel(got, theirs(ms.Tensor(x), ms.Tensor(k), ms.Tensor(b)).asnumpy()) <= TOL, (case, stride)
                assert _rel(got, dense.conv3x3_forward(x, k, stride, b, "relu")) <= TOL, (case, stride)
            xt, kt, bt = _data(case, i, transposed=True)
            deconv = nn.Conv2dTranspose(cin, cout, kernel_size=2, stride=2, has_bias=True)
            deconv.weight.set_data(ms.Tensor(kt))
            deconv.bias.set_data(ms.Tensor(bt))
            op = dense.convt2x2_op("relu")

            def run(xx, kk, bb, op=op):
                return op(xx, kk, bb)

            if mode == "graph":
                run = ms.jit(run)
            got = run(ms.Tensor(xt), ms.Tensor(kt), ms.Tensor(bt)).asnumpy()
            assert _rel(got, ops.relu(deconv(ms.Tensor(xt))).asnumpy()) <= TOL, case
            assert _rel(got, dense.convt2x2_forward(xt, kt, bt, "relu")) <= TOL, case
    finally:
        runtime.mindspore("pynative")


def test_fold_uses_dense_cells_natively_and_not_for_exports(monkeypatch):
    runtime.mindspore("pynative")
    from centerface_flow.fused.cells import FusedConv3x3, FusedConvTranspose2x2, FusedStemBlock
    from centerface_flow.fused.fold import fold_bn
    from centerface_flow.nets.centerface import CenterFace

    def fold(flag):
        with native.use_native(flag):
            return fold_bn(CenterFace(24, "relu", init_seed=0), use_native=flag)

    def counts(net):
        cells = list(dict(net.cells_and_names()).values())
        return (sum(isinstance(c, FusedConv3x3) for c in cells), sum(isinstance(c, FusedConvTranspose2x2) for c in cells))

    net = fold(True)
    assert counts(net) == (1, 3)  # conv_last; up1-3 (the stem conv is fused with the first block)
    assert isinstance(net.base.need_fp1[0], FusedStemBlock)
    assert net.dla_up.valid_mask is None  # conv_last reads only the valid region itself: no mask op before it
    names = {p.name for p in net.get_parameters()}
    assert {"base.need_fp1.0.features.0.weight", "base.need_fp1.0.features.0.bias", "dla_up.conv_last.0.weight",
            "dla_up.conv_last.0.bias", "dla_up.up1.up.0.weight", "dla_up.up1.up.0.bias", "valid_region"} <= names
    assert counts(fold(False)) == (0, 0)  # exports: MindSpore's operators
    monkeypatch.setattr(dense, "available", lambda: False)
    net = fold(True)
    assert counts(net) == (0, 0) and net.dla_up.valid_mask is not None  # MindSpore's conv_last needs the mask


def test_operator_arguments_are_refused():
    runtime.mindspore("pynative")
    with pytest.raises(ValueError, match="stride"):
        dense.conv3x3_op(3)
    with pytest.raises(ValueError, match="activation"):
        dense.conv3x3_op(1, "tanh")
    with pytest.raises(ValueError, match="activation"):
        dense.convt2x2_op("relu6")
