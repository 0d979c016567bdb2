"""3×3 depthwise convolution cells that run the native kernels (:mod:`centerface_flow.ops.native`) when enabled.

:class:`DepthwiseConv3x3` *is* an ``nn.Conv2d`` (same ``weight`` parameter (C, 1, 3, 3), same name, same
initialisation and checkpoints); only ``construct`` differs when the native kernels are on.
Its inference form with BatchNorm folded in is :class:`centerface_flow.fused.cells.FusedDepthwiseConv3x3`.
"""
from __future__ import annotations

from mindspore import nn

from centerface_flow.ops import native

__all__ = ["DepthwiseConv3x3"]


class DepthwiseConv3x3(nn.Conv2d):
    """Depthwise 3×3 convolution, padding 1, no bias: ``(N, C, H, W) -> (N, C, (H-1)//stride+1, (W-1)//stride+1)``.

    ``use_native=None`` decides with :func:`centerface_flow.ops.native.enabled` at construction time.
    """

    def __init__(self, channels: int, stride: int = 1, use_native: bool | None = None) -> None:
        super().__init__(channels, channels, 3, stride, pad_mode="pad", padding=1, has_bias=False, group=channels)
        self.use_native = native.enabled() if use_native is None else bool(use_native)
        self.native_op = native.depthwise_op(stride) if self.use_native else None

    def construct(self, x):
        if self.use_native:
            return self.native_op(x, self.weight)
        return super().construct(x)
