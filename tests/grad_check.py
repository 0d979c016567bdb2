"""Gradients of a custom operator and of MindSpore's own operator under ``ms.grad``, for the tests that compare them."""
from __future__ import annotations


def input_and_weight_gradients(ms, mode: str, forward, x, k, dy) -> list:
    """The gradients over ``x`` and ``k`` of sum(forward(x, k) * dy) (``x``, ``k``, ``dy`` numpy arrays, the
    gradients too): ``ms.grad``, compiled with ``ms.jit`` in graph mode."""
    from mindspore import ops

    def loss(xx, kk, gy):
        return ops.mul(forward(xx, kk), gy).sum()

    grad = ms.grad(loss, grad_position=(0, 1))
    if mode == "graph":
        grad = ms.jit(grad)
    return [g.asnumpy() for g in grad(ms.Tensor(x), ms.Tensor(k), ms.Tensor(dy))]
