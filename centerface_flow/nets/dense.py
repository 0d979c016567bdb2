"""Dense convolution cells that run the native kernels (:mod:`centerface_flow.ops.dense`) when enabled.

:class:`Conv3x3` *is* an ``nn.Conv2d`` (same ``weight`` parameter (Cout, Cin, 3, 3), same name, same initialisation
and checkpoints; stride 1 or 2, padding 1, no bias) and :class:`ConvTranspose2x2` an ``nn.Conv2dTranspose`` (weight
(Cin, Cout, 2, 2); stride 2, no padding, no bias); only ``construct`` differs when the native kernels are on. Their
inference forms with BatchNorm folded in are :class:`centerface_flow.fused.cells.FusedConv3x3` and
:class:`~centerface_flow.fused.cells.FusedConvTranspose2x2`.
"""
from __future__ import annotations

import logging

from mindspore import nn

from centerface_flow.ops import dense, native

__all__ = ["Conv3x3", "ConvTranspose2x2", "use_dense"]

log = logging.getLogger(__name__)


def use_dense() -> bool:
    """Whether networks built now run their dense 3×3 and 2×2 transposed convolutions natively (native kernels
    enabled, the dense kernels available)."""
    if not native.enabled():
        return False
    if not dense.available():
        log.info("native dense kernels unavailable (library not built or scipy-openblas32 missing); "
                 "using MindSpore's operators for the 3x3 and transposed convolutions")
        return False
    return True


class Conv3x3(nn.Conv2d):
    """3×3 convolution, stride 1 or 2, padding 1, no bias: ``(N, Cin, H, W) -> (N, Cout, (H-1)//stride+1,
    (W-1)//stride+1)``.

    ``use_native=None`` decides with :func:`use_dense` at construction time.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, use_native: bool | None = None) -> None:
        super().__init__(in_channels, out_channels, 3, stride, pad_mode="pad", padding=1, has_bias=False)
        self.use_native = use_dense() if use_native is None else bool(use_native)
        self.native_op = dense.conv3x3_train_op(stride) if self.use_native else None

    def construct(self, x):
        if self.use_native:
            return self.native_op(x, self.weight)
        return super().construct(x)


class ConvTranspose2x2(nn.Conv2dTranspose):
    """2×2 transposed convolution, stride 2, no padding, no bias: ``(N, Cin, h, w) -> (N, Cout, 2h, 2w)``.

    ``use_native=None`` decides with :func:`use_dense` at construction time.
    """

    def __init__(self, in_channels: int, out_channels: int, use_native: bool | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size=2, stride=2, has_bias=False)
        self.use_native = use_dense() if use_native is None else bool(use_native)
        self.native_op = dense.convt2x2_train_op() if self.use_native else None

    def construct(self, x):
        if self.use_native:
            return self.native_op(x, self.weight)
        return super().construct(x)
