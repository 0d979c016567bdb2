"""1×1 convolution cells that run the native GEMM kernels (:mod:`centerface_flow.ops.pointwise`) when enabled.

:class:`PointwiseConv` *is* an ``nn.Conv2d`` (same ``weight`` parameter (Cout, Cin, 1, 1), same name, same
initialisation and checkpoints; no bias); only ``construct`` differs when the native kernels are on.
:class:`FusedPointwise` is the inference form made by :func:`centerface_flow.fused.fold.fold_bn`: convolution +
folded-BatchNorm bias + activation (+ the residual of an inverted-residual block) in one kernel call.
"""
from __future__ import annotations

from mindspore import Parameter, Tensor, nn

from centerface_flow.nets.depthwise import FoldedConv
from centerface_flow.ops import irblock, pointwise

__all__ = ["FusedBlock", "FusedHeads", "FusedPointwise", "FusedStemBlock", "PointwiseConv"]


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


class FusedPointwise(FoldedConv):
    """Inference-only 1×1 conv + bias + activation ("", "relu", "relu6") [+ residual] in one native kernel call.

    ``weight`` (Cout, Cin, 1, 1) and ``bias`` (Cout,) are given (BatchNorm already folded in) and keep the given
    parameter names. ``construct(x)``, or ``construct(x, residual)`` after :meth:`add_residual`.
    """

    def __init__(self, weight: Tensor, bias: Tensor, activation: str, weight_name: str, bias_name: str) -> None:
        super().__init__(weight, bias, weight_name, bias_name)
        self.activation = activation
        self.has_residual = False
        self.native_op = pointwise.pointwise_op(bias=True, activation=activation)

    def add_residual(self) -> None:
        """From now on ``construct(x, residual)`` returns ``activation(W·x + b) + residual``."""
        self.has_residual = True
        self.native_op = pointwise.pointwise_op(bias=True, activation=self.activation, residual=True)

    def construct(self, x, residual=None):
        if self.has_residual:
            return self.native_op(x, self.weight, self.bias, residual)
        return self.native_op(x, self.weight, self.bias)


def _frozen(params: list) -> list:
    """Inference-only parameters from (name, Tensor) pairs (the fused cells' weights keep their given names)."""
    return [Parameter(value, name=name, requires_grad=False) for name, value in params]


class FusedBlock(nn.Cell):
    """Inference-only inverted-residual block (expand, depthwise, project; BatchNorm folded) in one native kernel
    call (:mod:`centerface_flow.ops.irblock`). ``params`` are the (name, Tensor) pairs we, be, wd, bd, wp, bp, or
    wd, bd, wp, bp for a block without expansion; ``region`` is the network's shared valid-region parameter."""

    def __init__(self, params: list, stride: int, activation: str, residual: bool, region: Parameter) -> None:
        super().__init__()
        values = _frozen(params)
        self.stride, self.activation, self.residual = int(stride), activation, bool(residual)
        self.expand = len(values) == 6
        if self.expand:
            self.we, self.be = values[:2]
        self.wd, self.bd, self.wp, self.bp = values[-4:]
        self.region = region
        self.native_op = irblock.block_op(stride, activation, residual, self.expand)

    def construct(self, x):
        if self.expand:
            return self.native_op(x, self.we, self.be, self.wd, self.bd, self.wp, self.bp, self.region)
        return self.native_op(x, self.wd, self.bd, self.wp, self.bp, self.region)


class FusedStemBlock(nn.Cell):
    """Inference-only stem (dense 3×3 stride-2 conv) and first block (no expansion: depthwise, project; BatchNorm
    folded) in one native kernel call (:func:`centerface_flow.ops.irblock.stem_block_op`). ``params`` are the (name,
    Tensor) pairs ws, bs, wd, bd, wp, bp; ``region`` is the network's shared valid-region parameter."""

    def __init__(self, params: list, activation: str, region: Parameter) -> None:
        super().__init__()
        self.ws, self.bs, self.wd, self.bd, self.wp, self.bp = _frozen(params)
        self.activation = activation
        self.region = region
        self.native_op = irblock.stem_block_op(activation)

    def construct(self, x):
        return self.native_op(x, self.ws, self.bs, self.wd, self.bd, self.wp, self.bp, self.region)


class FusedHeads(nn.Cell):
    """Inference-only: CenterFace's four 1×1 heads (heatmap with its sigmoid, size, offset, landmarks) in one native
    kernel call. ``params`` are the eight (name, Tensor) pairs weight, bias of hm, wh, off, kps in that order."""

    def __init__(self, params: list) -> None:
        super().__init__()
        (self.w_hm, self.b_hm, self.w_wh, self.b_wh, self.w_off, self.b_off, self.w_lm, self.b_lm) = _frozen(params)
        self.native_op = pointwise.heads_op()

    def construct(self, x):
        return self.native_op(x, self.w_hm, self.b_hm, self.w_wh, self.b_wh, self.w_off, self.b_off, self.w_lm,
                              self.b_lm)
