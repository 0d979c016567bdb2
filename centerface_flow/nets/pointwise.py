"""1×1 convolution cells that run the native GEMM kernels (:mod:`centerface_flow.ops.pointwise`) when enabled.

:class:`PointwiseConv` *is* an ``nn.Conv2d`` (same ``weight`` parameter (Cout, Cin, 1, 1), same name, same
initialisation and checkpoints; no bias); only ``construct`` differs when the native kernels are on.
Its inference forms with BatchNorm folded in are in :mod:`centerface_flow.fused.cells`.
"""
from __future__ import annotations

from mindspore import nn

from centerface_flow.ops import pointwise

__all__ = ["PointwiseConv"]


class PointwiseConv(nn.Conv2d):
    """1×1 convolution, stride 1, no bias: ``(N, Cin, H, W) -> (N, Cout, H, W)``.

    ``use_native=None`` decides with :func:`centerface_flow.ops.pointwise.use_pointwise` at construction time.
    """

    def __init__(self, in_channels: int, out_channels: int, use_native: bool | None = None) -> None:
        super().__init__(in_channels, out_channels, 1, 1, pad_mode="pad", padding=0, has_bias=False)
        self.use_native = pointwise.use_pointwise() if use_native is None else bool(use_native)
        self.native_op = pointwise.pointwise_op() if self.use_native else None

    def construct(self, x):
        if self.use_native:
            return self.native_op(x, self.weight)
        return super().construct(x)
