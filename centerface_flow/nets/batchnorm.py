"""BatchNorm with its activation fused in, running the native training kernel (:mod:`centerface_flow.ops.batchnorm`)
when enabled.

:class:`BatchNormAct` *is* an ``nn.BatchNorm2d`` (same parameters ``gamma``, ``beta``, ``moving_mean``,
``moving_variance``, names, initialisation, checkpoints and inference behaviour) that also applies ``activation``.
Networks place it where a BatchNorm is followed by an activation and put an ``nn.Identity`` in the activation's
slot, so cell indices (and therefore parameter names) stay those of the model zoo.
"""
from __future__ import annotations

import numpy as np
from mindspore import Tensor, nn, ops

from centerface_flow.ops import batchnorm, native

__all__ = ["BatchNormAct", "make_activation"]


def make_activation(activation: str) -> nn.Cell:
    """``"relu"`` -> ``nn.ReLU``, ``"relu6"`` -> ``nn.ReLU6``."""
    if activation == "relu":
        return nn.ReLU()
    if activation == "relu6":
        return nn.ReLU6()
    raise ValueError(f"activation must be 'relu' or 'relu6', got {activation!r}")


class BatchNormAct(nn.BatchNorm2d):
    """``activation(BatchNorm2d(x))`` with activation "", "relu" or "relu6".

    In training mode with batch statistics and native kernels (``use_native=None``: decided by
    :func:`centerface_flow.ops.native.enabled` at construction), one native kernel computes it (and its gradient) and
    the running statistics are updated exactly as MindSpore's BatchNorm does (``momentum`` = weight of the old
    value; the variance folded in is the unbiased batch variance). Otherwise MindSpore's BatchNorm then the
    activation.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.9, activation: str = "",
                 use_native: bool | None = None) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.activation = activation
        self.has_act = bool(activation)
        self.act = make_activation(activation) if activation else nn.Identity()
        self.use_native = (native.enabled() and batchnorm.available()) if use_native is None else bool(use_native)
        self.native_op = batchnorm.bn_train_op(activation) if self.use_native else None
        self.eps_tensor = Tensor(np.array([eps], np.float32))
        # running = running * momentum + batch * (1 - momentum); constants as tensors (PyNative under NumPy 2
        # can fail on the first tensor-by-Python-float op)
        self.keep = Tensor(np.float32(momentum))
        self.take = Tensor(np.float32(1.0 - momentum))

    def construct(self, x):
        if self.use_native and self.training and self.use_batch_statistics is None:
            y, mean, var = self.native_op(x, self.gamma, self.beta, self.eps_tensor)
            mean, var = ops.stop_gradient(mean), ops.stop_gradient(var)  # var: unbiased, as MindSpore folds it in
            ops.assign(self.moving_mean, ops.add(ops.mul(self.moving_mean, self.keep), ops.mul(mean, self.take)))
            ops.assign(self.moving_variance,
                       ops.add(ops.mul(self.moving_variance, self.keep), ops.mul(var, self.take)))
            return y
        out = super().construct(x)
        if self.has_act:
            return self.act(out)
        return out
