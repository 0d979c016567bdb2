"""Inference cells running the native dense kernels (:mod:`centerface_flow.ops.dense`), made by
:func:`centerface_flow.fused.fold.fold_bn`: a dense 3×3 convolution and a 2×2 stride-2 transposed convolution, each with
its folded-BatchNorm bias and activation in the same kernel call. Weights and biases are given (BatchNorm already
folded in) and keep the given parameter names; nothing here is trainable.
"""
from __future__ import annotations

from mindspore import Parameter, Tensor

from centerface_flow.nets.depthwise import FoldedConv
from centerface_flow.ops import dense

__all__ = ["FusedConv3x3", "FusedConvTranspose2x2"]


class FusedConv3x3(FoldedConv):
    """Dense 3×3 conv (padding 1, stride 1 or 2) + bias + activation ("", "relu", "relu6"):
    ``(N, Cin, H, W) -> (N, Cout, (H-1)//stride+1, (W-1)//stride+1)``.

    ``weight`` (Cout, Cin, 3, 3), ``bias`` (Cout,); ``region`` is the network's shared (4,) valid-region parameter
    (:func:`centerface_flow.fused.fold.set_valid_region`): only the valid part of a padded input is read and the outputs
    outside it are zero.
    """

    def __init__(self, weight: Tensor, bias: Tensor, stride: int, activation: str, weight_name: str, bias_name: str,
                 region: Parameter) -> None:
        super().__init__(weight, bias, weight_name, bias_name)
        self.region = region
        self.stride = int(stride)
        self.activation = activation
        self.native_op = dense.conv3x3_op(self.stride, activation)

    def construct(self, x):
        return self.native_op(x, self.weight, self.bias, self.region)


class FusedConvTranspose2x2(FoldedConv):
    """2×2 stride-2 transposed conv + bias + activation ("" or "relu"): ``(N, Cin, h, w) -> (N, Cout, 2h, 2w)``;
    ``weight`` (Cin, Cout, 2, 2) as in ``nn.Conv2dTranspose``, ``bias`` (Cout,)."""

    def __init__(self, weight: Tensor, bias: Tensor, activation: str, weight_name: str, bias_name: str) -> None:
        super().__init__(weight, bias, weight_name, bias_name)
        self.activation = activation
        self.native_op = dense.convt2x2_op(activation)

    def construct(self, x):
        return self.native_op(x, self.weight, self.bias)
