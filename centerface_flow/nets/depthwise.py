"""3×3 depthwise convolution cells that run the native kernels (:mod:`centerface_flow.ops.native`) when enabled.

:class:`DepthwiseConv3x3` *is* an ``nn.Conv2d`` (same ``weight`` parameter (C, 1, 3, 3), same name, same
initialisation and checkpoints); only ``construct`` differs when the native kernels are on.
:class:`FusedDepthwiseConv3x3` is the inference form made by :func:`centerface_flow.fused.fold.fold_bn` with native
kernels:
convolution + folded-BatchNorm bias + activation in one kernel call.
"""
from __future__ import annotations

from mindspore import Parameter, Tensor, nn

from centerface_flow.ops import native

__all__ = ["DepthwiseConv3x3", "FoldedConv", "FusedDepthwiseConv3x3", "ValidMask"]


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


class FoldedConv(nn.Cell):
    """Base of the inference-only native cells made by :func:`centerface_flow.fused.fold.fold_bn`: a frozen ``weight``
    and ``bias`` (BatchNorm already folded in) under the given parameter names."""

    def __init__(self, weight: Tensor, bias: Tensor, weight_name: str, bias_name: str) -> None:
        super().__init__()
        self.weight = Parameter(weight, name=weight_name, requires_grad=False)
        self.bias = Parameter(bias, name=bias_name, requires_grad=False)


class FusedDepthwiseConv3x3(FoldedConv):
    """Inference-only depthwise 3×3 conv + bias + activation ("", "relu", "relu6") in one native kernel call.

    ``weight`` (C, 1, 3, 3) and ``bias`` (C,) are given (BatchNorm already folded in) and keep the given parameter
    names. ``region`` is the network's shared (4,) valid-region parameter (see
    :func:`centerface_flow.ops.native.depthwise_op`): only the valid part of a padded input is computed. Made by
    :func:`centerface_flow.fused.fold.fold_bn` when the native kernels are enabled.
    """

    def __init__(self, weight: Tensor, bias: Tensor, stride: int, activation: str, weight_name: str,
                 bias_name: str, region: Parameter) -> None:
        super().__init__(weight, bias, weight_name, bias_name)
        self.region = region
        self.stride = int(stride)
        self.activation = activation
        self.native_op = native.depthwise_op(stride, bias=True, activation=activation, valid=True)
        self.has_pre = False
        self.pre_bias = None

    def fuse_input_activation(self, pre_bias: Parameter) -> None:
        """Apply ``activation(x + pre_bias)`` to the input inside the kernel: the bias and activation of the 1×1
        conv before this one (which then skips them). Saves two passes over the largest tensors."""
        self.pre_bias = pre_bias
        self.has_pre = True
        self.native_op = native.depthwise_op(self.stride, bias=True, activation=self.activation, valid=True, pre=True)

    def construct(self, x):
        if self.has_pre:
            return self.native_op(x, self.weight, self.bias, self.region, self.pre_bias)
        return self.native_op(x, self.weight, self.bias, self.region)


class ValidMask(nn.Cell):
    """Zeroes everything outside the valid region given by the shared ``region`` parameter (native kernel)."""

    def __init__(self, region: Parameter) -> None:
        super().__init__()
        self.region = region
        self.mask_op = native.mask_op()

    def construct(self, x):
        return self.mask_op(x, self.region)
