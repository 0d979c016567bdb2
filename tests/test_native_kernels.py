"""Native 3×3 depthwise kernels: the C++ library vs its numpy twins vs MindSpore's own operators, forward and
gradients, on random shapes, as MindSpore custom operators in graph and pynative mode, and the on/off switch."""
from __future__ import annotations

import numpy as np
import pytest
from grad_check import input_and_weight_gradients

from centerface_flow import runtime
from centerface_flow.errors import UserError
from centerface_flow.export import relative_error as _rel
from centerface_flow.ops import native

TOL = 1e-5

pytestmark = pytest.mark.skipif(native.library_path() is None, reason="native kernel library not built")


def _shapes(seed: int, count: int):
    """Random (N, C, H, W), small and odd sizes included (1-pixel rows / columns hit every edge case)."""
    rng = np.random.default_rng(seed)
    fixed = [(1, 1, 1, 1), (2, 3, 1, 7), (1, 2, 6, 1), (1, 4, 2, 2), (2, 5, 7, 9)]
    drawn = [(int(rng.integers(1, 4)), int(rng.integers(1, 20)), int(rng.integers(1, 40)), int(rng.integers(1, 40)))
             for _ in range(count)]
    return fixed + drawn


def _data(shape, stride, seed):
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    x = rng.standard_normal(shape).astype(np.float32)
    k = rng.standard_normal((c, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    dy = rng.standard_normal((n, c, (h - 1) // stride + 1, (w - 1) // stride + 1)).astype(np.float32)
    return x, k, b, dy


@pytest.mark.parametrize("stride", [1, 2])
def test_library_matches_numpy_twins(stride):
    for i, shape in enumerate(_shapes(stride, 12)):
        x, k, b, dy = _data(shape, stride, i)
        y = native.dw3x3_forward(x, k, stride)
        assert y.shape == dy.shape
        assert _rel(native.call_kernel(f"CfDw3x3S{stride}", [x, k], y.shape), y) <= TOL, shape
        for act in native.ACTIVATIONS:
            name = f"CfDw3x3S{stride}Bias{act.capitalize()}"
            ref = native.dw3x3_forward(x, k, stride, b, act)
            assert _rel(native.call_kernel(name, [x, k, b], y.shape), ref) <= TOL, (shape, act)
        dx = native.dw3x3_back_input(x.shape, k, dy, stride)
        assert _rel(native.call_kernel(f"CfDw3x3BackInputS{stride}", [x, k, dy], x.shape), dx) <= TOL, shape
        dw = native.dw3x3_back_weight(x, dy, stride)
        assert _rel(native.call_kernel(f"CfDw3x3BackWeightS{stride}", [x, dy], k.shape), dw) <= TOL, shape


@pytest.mark.parametrize("stride", [1, 2])
def test_numpy_twin_gradients_are_the_adjoint(stride):
    """<dy, f(x, k)> is bilinear: its derivatives are the twins' back_input / back_weight (exact identities)."""
    x, k, _, dy = _data((2, 3, 9, 8), stride, 7)
    rng = np.random.default_rng(1)
    v = rng.standard_normal(x.shape).astype(np.float32)
    u = rng.standard_normal(k.shape).astype(np.float32)
    lhs_x = float((native.dw3x3_forward(v, k, stride).astype(np.float64) * dy).sum())
    rhs_x = float((native.dw3x3_back_input(x.shape, k, dy, stride).astype(np.float64) * v).sum())
    assert lhs_x == pytest.approx(rhs_x, rel=1e-5)
    lhs_k = float((native.dw3x3_forward(x, u, stride).astype(np.float64) * dy).sum())
    rhs_k = float((native.dw3x3_back_weight(x, dy, stride).astype(np.float64) * u).sum())
    assert lhs_k == pytest.approx(rhs_k, rel=1e-5)


@pytest.mark.parametrize("stride", [1, 2])
def test_valid_region_kernels_equal_unpadded(stride):
    """On a bottom/right padded input (garbage in the padding) the Valid kernels equal the unpadded convolution
    inside the valid region and write zeros outside; CfMaskValid zeroes the padded region."""
    rng = np.random.default_rng(stride)
    for padded, image, ratio in [((128, 160), (96, 128), 1), ((128, 160), (96, 128), 2), ((256, 128), (160, 96), 16),
                                 ((256, 128), (160, 96), 32), ((64, 96), (64, 96), 4), ((96, 64), (32, 64), 8)]:
        c = 3
        h_in, w_in = padded[0] // ratio, padded[1] // ratio
        h, w = -(-image[0] // ratio), -(-image[1] // ratio)
        x = rng.standard_normal((2, c, h_in, w_in)).astype(np.float32)
        k = rng.standard_normal((c, 1, 3, 3)).astype(np.float32)
        b = rng.standard_normal(c).astype(np.float32)
        region = native.valid_region(padded, image)
        out_shape = (2, c, (h_in - 1) // stride + 1, (w_in - 1) // stride + 1)
        for act in native.ACTIVATIONS:
            out = native.call_kernel(f"CfDw3x3S{stride}Bias{act.capitalize()}Valid", [x, k, b, region], out_shape)
            ref = native.dw3x3_forward(x[:, :, :h, :w], k, stride, b, act)
            vh, vw = ref.shape[2:]
            assert _rel(out[:, :, :vh, :vw], ref) <= TOL, (padded, image, ratio)
            assert not out[:, :, vh:].any() and not out[:, :, :, vw:].any()
        unpadded = np.zeros(4, np.float32)  # region[0] <= 0: the whole tensor is valid
        out = native.call_kernel(f"CfDw3x3S{stride}BiasValid", [x, k, b, unpadded], out_shape)
        assert _rel(out, native.dw3x3_forward(x, k, stride, b)) <= TOL
        masked = native.call_kernel("CfMaskValid", [x, region], x.shape)
        assert np.array_equal(masked[:, :, :h, :w], x[:, :, :h, :w])
        assert not masked[:, :, h:].any() and not masked[:, :, :, w:].any()


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("act", ["relu", "relu6"])
def test_input_activation_kernels(stride, act):
    """CfDw3x3S*Pre<act>Bias<act>Valid(x, w, b, region, b_in) = the twin on act(x + b_in), on a padded input."""
    rng = np.random.default_rng(3)
    for padded, image, ratio in [((128, 160), (96, 128), 2), ((64, 64), (64, 64), 4), ((256, 128), (160, 96), 16)]:
        c = 4
        h_in, w_in = padded[0] // ratio, padded[1] // ratio
        h, w = -(-image[0] // ratio), -(-image[1] // ratio)
        x = 4 * rng.standard_normal((2, c, h_in, w_in)).astype(np.float32)
        k, b, b_in = (rng.standard_normal(s).astype(np.float32) for s in ((c, 1, 3, 3), (c,), (c,)))
        out_shape = (2, c, (h_in - 1) // stride + 1, (w_in - 1) // stride + 1)
        name = f"CfDw3x3S{stride}Pre{act.capitalize()}Bias{act.capitalize()}Valid"
        out = native.call_kernel(name, [x, k, b, native.valid_region(padded, image), b_in], out_shape)
        pre = np.clip(x + b_in[None, :, None, None], 0, 6 if act == "relu6" else None)
        ref = native.dw3x3_forward(pre[:, :, :h, :w], k, stride, b, act)
        vh, vw = ref.shape[2:]
        assert _rel(out[:, :, :vh, :vw], ref) <= TOL and not out[:, :, vh:].any() and not out[:, :, :, vw:].any()


def test_kernel_rejects_bad_arguments():
    x = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(RuntimeError, match="returned"):
        native.call_kernel("CfDw3x3S1", [x, np.zeros((3, 1, 3, 3), np.float32)], (1, 2, 4, 4))  # C mismatch
    with pytest.raises(RuntimeError, match="returned"):
        native.call_kernel("CfDw3x3S2", [x, np.zeros((2, 1, 3, 3), np.float32)], (1, 2, 4, 4))  # wrong out
    with pytest.raises(RuntimeError, match="returned"):  # 4 rows padded to 6 is not a whole-number ratio
        native.call_kernel("CfMaskValid", [x, native.valid_region((6, 4), (3, 4))], x.shape)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["graph", "pynative"])
@pytest.mark.parametrize("stride", [1, 2])
def test_custom_op_matches_mindspore(mode, stride):
    """Forward and both gradients of the custom op vs ``ops.conv2d`` (groups=C) and the numpy twins."""
    ms = runtime.mindspore(mode)
    from mindspore import ops

    try:
        op = native.depthwise_op(stride)
        for i, shape in enumerate(_shapes(10 + stride, 3)):
            x, k, b, dy = _data(shape, stride, i)
            c = shape[1]

            def theirs(xx, kk):  # graph mode compiles it in this iteration: late binding is fine
                return ops.conv2d(xx, kk, stride=stride, pad_mode="pad", padding=1, groups=c)  # noqa: B023

            y = op(ms.Tensor(x), ms.Tensor(k)).asnumpy()
            y_ms = theirs(ms.Tensor(x), ms.Tensor(k)).asnumpy()
            assert _rel(y, y_ms) <= TOL and _rel(y, native.dw3x3_forward(x, k, stride)) <= TOL, shape
            dx, dk = input_and_weight_gradients(ms, mode, op, x, k, dy)
            dx_ms, dk_ms = input_and_weight_gradients(ms, mode, theirs, x, k, dy)
            assert _rel(dx, dx_ms) <= TOL and _rel(dx, native.dw3x3_back_input(x.shape, k, dy, stride)) <= TOL
            assert _rel(dk, dk_ms) <= TOL and _rel(dk, native.dw3x3_back_weight(x, dy, stride)) <= TOL
            fused = native.depthwise_op(stride, bias=True, activation="relu6")
            out = fused(ms.Tensor(x), ms.Tensor(k), ms.Tensor(b)).asnumpy()
            assert _rel(out, native.dw3x3_forward(x, k, stride, b, "relu6")) <= TOL
    finally:
        runtime.mindspore("pynative")


@pytest.mark.slow
def test_network_uses_switch(monkeypatch):
    """CENTERFACE_NATIVE_KERNELS picks the implementation; both give the same outputs and parameter gradients.

    BatchNorm uses its running statistics here: with batch statistics on the 2×2 stride-32 map of a 64×64 input,
    float32 rounding differences are amplified by the normalisation, which tests nothing about the kernels.
    A ReLU input within float32 rounding of zero may also land on either side (here one of 9216 after the
    depthwise layer of ``need_fp3.5``): its one gradient entry then differs in full, which moves the gradients of the
    layers before it by up to ~2 % of their largest entry. So the median parameter gradient must agree to 1e-5, and
    all of them to 5 %: a kernel or wiring error (a wrong gradient, a missing term) is off by O(1) in its layer and
    every layer before it."""
    ms = runtime.mindspore("pynative")
    from centerface_flow.nets.centerface import CenterFace
    from centerface_flow.nets.depthwise import DepthwiseConv3x3

    x = ms.Tensor(np.random.default_rng(0).uniform(0, 255, (1, 3, 64, 64)).astype(np.float32))
    results = {}
    for flag in ("1", "0"):
        monkeypatch.setenv(native.ENV, flag)
        net = CenterFace(24, "relu", init_seed=3)
        dws = [c for _, c in net.cells_and_names() if isinstance(c, DepthwiseConv3x3)]
        assert len(dws) == 17 and all(c.use_native == (flag == "1") for c in dws)
        net.set_train(False)
        weights = net.trainable_params()
        grad = ms.value_and_grad(lambda t, net=net: sum(o.sum() for o in net(t)), None, weights)
        loss, grads = grad(x)
        results[flag] = (float(loss.asnumpy()), {w.name: g.asnumpy() for w, g in zip(weights, grads)})
    assert results["1"][0] == pytest.approx(results["0"][0], rel=1e-5)
    errors = {name: _rel(results["1"][1][name], g) for name, g in results["0"][1].items()}
    assert max(errors.values()) <= 0.05, max(errors.items(), key=lambda item: item[1])
    assert np.median(list(errors.values())) <= 1e-5, sorted(errors.items(), key=lambda item: -item[1])[:5]


def test_switch_values(monkeypatch):
    monkeypatch.setenv(native.ENV, "0")
    assert native.enabled() is False
    monkeypatch.setenv(native.ENV, "1")
    assert native.enabled() is True
    monkeypatch.setenv(native.ENV, "yes")
    with pytest.raises(UserError, match=native.ENV):
        native.enabled()
    with native.use_native(False):
        assert native.enabled() is False
    monkeypatch.delenv(native.ENV)
    runtime.mindspore("pynative")
    assert native.enabled() is True  # CPU backend, library built


def test_library_found_in_package():
    path = native.library_path()
    assert path.parent.name == "_kernels" and path.parent.parent.name == "centerface_flow"


def test_depthwise_operator_arguments_are_refused():
    runtime.mindspore("pynative")
    for kwargs, words in (({"stride": 3}, "stride"), ({"stride": 1, "activation": "relu"}, "activation"),
                          ({"stride": 1, "valid": True}, "valid=True needs bias"),
                          ({"stride": 1, "bias": True, "activation": "relu", "pre": True}, "pre=True needs")):
        with pytest.raises(ValueError, match=words):
            native.depthwise_op(**kwargs)
