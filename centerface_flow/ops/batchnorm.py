"""Native training-mode BatchNorm + activation (``kernels/batchnorm.cc``) as a MindSpore AOT custom operator, and
its numpy twins.

In training, MindSpore's CPU BatchNorm, ReLU6 and their gradients take about as long as all the convolutions
together (four operators, several passes over every activation tensor each). The native operator computes the batch
statistics, normalisation, affine transform and activation in two passes, and its ``bprop`` the gradients in two
more. :class:`centerface_flow.nets.batchnorm.BatchNormAct` uses it in training mode when the native kernels are
enabled (:func:`centerface_flow.ops.native.enabled`) and updates the running statistics as ``nn.BatchNorm2d`` does.
"""
from __future__ import annotations

from functools import cache

import numpy as np

from centerface_flow.ops import native

__all__ = ["available", "bn_train_backward", "bn_train_forward", "bn_train_op"]



def available() -> bool:
    """Whether the native BatchNorm kernel library was built."""
    return native.library_path() is not None


@cache
def bn_train_op(activation: str = ""):
    """``op(x (N, C, H, W), gamma (C,), beta (C,), eps (1,)) -> (y, mean (C,), var (C,))``: training-mode
    BatchNorm (batch mean, biased batch variance), then ``activation`` ("", "relu", "relu6"); ``var`` is the
    *unbiased* batch variance, for the running statistics. Differentiable in x, gamma and beta (native backward
    kernel; mean and var carry no gradient)."""
    from mindspore import ops

    if activation not in native.ACTIVATIONS:
        raise ValueError(f"activation must be one of {native.ACTIVATIONS}, got {activation!r}")
    lib = native.library_path()
    if lib is None:
        raise RuntimeError("native BatchNorm kernel library not built")
    act = activation.capitalize()

    def same(x, *_):
        return x

    back = ops.Custom(f"{lib}:CfBnTrainBack{act}",
                      out_shape=lambda x, gamma, mean, var, eps, y, dy: (list(x), list(gamma), list(gamma)),
                      out_dtype=lambda x, *_: (x, x, x), func_type="aot")
    zeros_like = ops.ZerosLike()

    def bprop(x, gamma, beta, eps, out, dout):
        dx, dgamma, dbeta = back(x, gamma, out[1], out[2], eps, out[0], dout[0])
        return dx, dgamma, dbeta, zeros_like(eps)

    return ops.Custom(f"{lib}:CfBnTrain{act}", out_shape=lambda x, gamma, beta, eps: (list(x), list(gamma),
                                                                                      list(gamma)),
                      out_dtype=lambda x, *_: (x, x, x), func_type="aot", bprop=bprop)


# ---------------------------------------------------------------------------------------------------------------
# numpy twins (float64 inside)


def _mask(y: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return (y > 0).astype(np.float64)
    if activation == "relu6":
        return ((y > 0) & (y < 6)).astype(np.float64)
    return np.ones_like(y, np.float64)


def bn_train_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float,
                     activation: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (N, C, H, W) -> (y (N, C, H, W), mean (C,), unbiased var (C,)) float32 (see :func:`bn_train_op`)."""
    x64 = np.asarray(x, np.float64)
    mean = x64.mean(axis=(0, 2, 3))
    var = x64.var(axis=(0, 2, 3))
    xhat = (x64 - mean[None, :, None, None]) / np.sqrt(var + eps)[None, :, None, None]
    y = xhat * np.asarray(gamma, np.float64)[None, :, None, None] + np.asarray(beta, np.float64)[None, :, None, None]
    y = native.apply_activation(y, activation)
    count = x64.size // x64.shape[1]
    unbiased = var * count / (count - 1) if count > 1 else var
    return y.astype(np.float32), mean.astype(np.float32), unbiased.astype(np.float32)


def bn_train_backward(x: np.ndarray, gamma: np.ndarray, eps: float, y: np.ndarray, dy: np.ndarray,
                      activation: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`bn_train_forward` w.r.t. (x, gamma, beta), given its output ``y`` and ``dy``."""
    x64 = np.asarray(x, np.float64)
    count = x64.shape[0] * x64.shape[2] * x64.shape[3]
    mean = x64.mean(axis=(0, 2, 3))[None, :, None, None]
    invstd = 1.0 / np.sqrt(x64.var(axis=(0, 2, 3)) + eps)[None, :, None, None]
    xhat = (x64 - mean) * invstd
    g = np.asarray(dy, np.float64) * _mask(np.asarray(y), activation)
    dbeta = g.sum(axis=(0, 2, 3))
    dgamma = (g * xhat).sum(axis=(0, 2, 3))
    k = np.asarray(gamma, np.float64)[None, :, None, None] * invstd
    dx = k * (g - dbeta[None, :, None, None] / count - xhat * dgamma[None, :, None, None] / count)
    return dx.astype(np.float32), dgamma.astype(np.float32), dbeta.astype(np.float32)
