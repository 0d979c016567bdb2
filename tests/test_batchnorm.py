"""Native training-mode BatchNorm + activation: the C++ library vs its numpy twins vs MindSpore's BatchNorm2d and
activations (outputs, gradients, running statistics), in graph and pynative mode."""
from __future__ import annotations

import numpy as np
import pytest

from centerface_flow import runtime
from centerface_flow.export import relative_error as _rel
from centerface_flow.ops import batchnorm, native

TOL = 1e-5

pytestmark = pytest.mark.skipif(not batchnorm.available(), reason="native BatchNorm kernel library not built")


def _data(shape, seed):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (rng.standard_normal(shape) * rng.uniform(0.5, 3, (1, c, 1, 1)) + rng.uniform(-2, 2, (1, c, 1, 1)))
    gamma = rng.uniform(0.5, 2, c)
    beta = rng.uniform(-1, 3, c)  # some outputs above 6: the ReLU6 mask is exercised on both sides
    dy = rng.standard_normal(shape)
    return (x.astype(np.float32), gamma.astype(np.float32), beta.astype(np.float32), dy.astype(np.float32))


SHAPES = [(1, 1, 2, 1), (2, 3, 1, 7), (3, 5, 7, 9), (2, 16, 12, 17), (1, 4, 33, 31)]


@pytest.mark.parametrize("activation", native.ACTIVATIONS)
def test_library_matches_numpy_twins(activation):
    act = activation.capitalize()
    for i, shape in enumerate(SHAPES):
        x, gamma, beta, dy = _data(shape, i)
        eps = np.array([1e-3], np.float32)
        y, mean, var = native.call_kernel(f"CfBnTrain{act}", [x, gamma, beta, eps],
                                          [x.shape, gamma.shape, gamma.shape])
        y_ref, mean_ref, var_ref = batchnorm.bn_train_forward(x, gamma, beta, 1e-3, activation)
        assert _rel(y, y_ref) <= TOL and _rel(mean, mean_ref) <= TOL and _rel(var, var_ref) <= TOL, shape
        grads = native.call_kernel(f"CfBnTrainBack{act}", [x, gamma, mean, var, eps, y, dy],
                                   [x.shape, gamma.shape, gamma.shape])
        refs = batchnorm.bn_train_backward(x, gamma, 1e-3, y_ref, dy, activation)
        for got, ref, name in zip(grads, refs, ("dx", "dgamma", "dbeta")):
            assert _rel(got, ref) <= 1e-4, (shape, name)


def test_numpy_twin_backward_is_the_gradient():
    """Finite differences of <dy, forward(x, gamma, beta)> agree with the twin's gradients."""
    x, gamma, beta, dy = _data((2, 3, 4, 5), 9)
    x, gamma, beta, dy = (a.astype(np.float64) for a in (x, gamma, beta, dy))

    def f(xx, gg, bb):
        m = xx.mean(axis=(0, 2, 3))[None, :, None, None]
        v = xx.var(axis=(0, 2, 3))[None, :, None, None]
        y = np.clip((xx - m) / np.sqrt(v + 1e-5) * gg[None, :, None, None] + bb[None, :, None, None], 0, 6)
        return float((y * dy).sum())

    y, _, _ = batchnorm.bn_train_forward(x, gamma, beta, 1e-5, "relu6")
    dx, dgamma, dbeta = batchnorm.bn_train_backward(x, gamma, 1e-5, y, dy, "relu6")
    h = 1e-6
    for idx in [(0, 0, 0, 0), (1, 2, 3, 4), (0, 1, 2, 1)]:
        e = np.zeros_like(x)
        e[idx] = h
        assert (f(x + e, gamma, beta) - f(x - e, gamma, beta)) / (2 * h) == pytest.approx(dx[idx], rel=1e-3, abs=1e-5)
    for c in range(3):
        e = np.zeros(3)
        e[c] = h
        assert (f(x, gamma + e, beta) - f(x, gamma - e, beta)) / (2 * h) == pytest.approx(dgamma[c], rel=1e-3)
        assert (f(x, gamma, beta + e) - f(x, gamma, beta - e)) / (2 * h) == pytest.approx(dbeta[c], rel=1e-3)


def test_bad_shapes_are_refused():
    x = np.zeros((1, 3, 4, 4), np.float32)
    eps = np.array([1e-5], np.float32)
    with pytest.raises(RuntimeError, match="returned 1"):
        native.call_kernel("CfBnTrain", [x, np.ones(2, np.float32), np.zeros(3, np.float32), eps],
                           [x.shape, (3,), (3,)])


def test_unknown_activation_is_refused():
    runtime.mindspore("pynative")
    with pytest.raises(ValueError, match="activation"):
        batchnorm.bn_train_op("tanh")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["graph", "pynative"])
@pytest.mark.parametrize("activation", ["relu6", ""])
def test_cell_matches_mindspore_batchnorm(mode, activation):
    """BatchNormAct with the native kernel vs nn.BatchNorm2d + activation: output, gradients of x / gamma / beta,
    and the running statistics after two training steps."""
    ms = runtime.mindspore(mode)
    from mindspore import nn, ops

    from centerface_flow.nets.batchnorm import BatchNormAct

    try:
        x, gamma, beta, dy = _data((2, 6, 9, 7), 3)
        cells = {}
        for native_flag in (True, False):
            cell = BatchNormAct(6, eps=1e-3, momentum=0.9, activation=activation, use_native=native_flag)
            cell.gamma.set_data(ms.Tensor(gamma))
            cell.beta.set_data(ms.Tensor(beta))
            cell.set_train(True)
            cells[native_flag] = cell
        assert cells[True].use_native and not cells[False].use_native
        results = {}
        class Loss(nn.Cell):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def construct(self, xx, gy):
                return ops.mul(self.inner(xx), gy).sum()

        for flag, cell in cells.items():
            grad = ms.value_and_grad(Loss(cell), grad_position=0, weights=[cell.gamma, cell.beta])
            if mode == "graph":
                grad = ms.jit(grad)
            out = []
            for _ in range(2):
                value, (dx, (dgamma, dbeta)) = grad(ms.Tensor(x), ms.Tensor(dy))
                out = [value.asnumpy(), dx.asnumpy(), dgamma.asnumpy(), dbeta.asnumpy()]
            results[flag] = out + [cell.moving_mean.asnumpy(), cell.moving_variance.asnumpy()]
            cell.set_train(False)
            results[flag].append(cell(ms.Tensor(x)).asnumpy())  # inference: running statistics, same path
        names = ("loss", "dx", "dgamma", "dbeta", "moving_mean", "moving_variance", "inference")
        for name, got, ref in zip(names, results[True], results[False]):
            assert _rel(got, ref) <= 1e-4, name
    finally:
        runtime.mindspore("pynative")
