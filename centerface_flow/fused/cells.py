"""Inference-only cells made by :func:`centerface_flow.fused.fold.fold_bn`: BatchNorm already folded into each
convolution's weight and bias, which are frozen and keep the parameter names of the trainable cells they replace,
and each cell is one native kernel call (:mod:`centerface_flow.ops`) with the bias, the activation and (where
given) the residual inside it. The trainable cells are in :mod:`centerface_flow.nets`; nothing here is trained.

``region`` arguments are the network's shared (4,) valid-region parameter
(:func:`centerface_flow.fused.fold.set_valid_region`): only the valid part of a padded input is computed.
"""
from __future__ import annotations

from mindspore import Parameter, Tensor, nn

from centerface_flow.ops import dense, irblock, native, pointwise

__all__ = ["FoldedConv", "FusedBlock", "FusedConv3x3", "FusedConvHeads", "FusedConvTranspose2x2",
           "FusedDepthwiseConv3x3", "FusedHeads", "FusedPointwise", "FusedStemBlock", "FusedUpSum", "ValidMask",
           "attach"]


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


def attach(parent: nn.Cell, attr: str | int, cell: nn.Cell) -> None:
    """``setattr(parent, attr, cell)`` (``parent[attr] = cell`` for an index into a ``SequentialCell``) keeping the
    parameter names inside ``cell`` (MindSpore would re-prefix them with ``attr``): a fused cell's parameters keep
    the checkpoint's names."""
    names = {id(p): p.name for p in cell.get_parameters()}
    if isinstance(attr, int):
        parent[attr] = cell
    else:
        setattr(parent, attr, cell)
    for p in cell.get_parameters():
        p.name = names[id(p)]


class FusedConvHeads(nn.Cell):
    """Inference-only: the neck's last 3×3 convolution (stride 1, + bias + ReLU, on the valid region) and
    CenterFace's four heads in one native kernel call (``CfConv3x3HeadsReluValid``). ``conv`` is the folded
    :class:`FusedConv3x3`, ``heads`` the :class:`FusedHeads` cell; both keep their parameters and names."""

    def __init__(self, conv: FusedConv3x3, heads: FusedHeads) -> None:
        super().__init__()
        attach(self, "conv", conv)
        attach(self, "heads", heads)
        self.native_op = dense.conv3x3_heads_op()

    def construct(self, x):
        c, h = self.conv, self.heads
        return self.native_op(x, c.weight, c.bias, c.region, h.w_hm, h.b_hm, h.w_wh, h.b_wh, h.w_off, h.b_off, h.w_lm,
                              h.b_lm)


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


class FusedUpSum(nn.Cell):
    """Inference-only: an IDA-up node's upsampling (:class:`FusedConvTranspose2x2`, ReLU) and its lateral 1×1
    conv with the sum (:class:`FusedPointwise` with its residual, ReLU) in one native kernel call
    (``CfUpSumRelu``). ``construct(x1, x0)``, the node's lateral cell's order: x1 the finer map, x0 the coarser one.
    Both cells keep their parameters and names."""

    def __init__(self, up: FusedConvTranspose2x2, lateral: FusedPointwise) -> None:
        super().__init__()
        attach(self, "up", up)
        attach(self, "lateral", lateral)
        self.native_op = dense.upsum_op()

    def construct(self, x1, x0):
        return self.native_op(x0, self.up.weight, self.up.bias, x1, self.lateral.weight, self.lateral.bias)


class ValidMask(nn.Cell):
    """Zeroes everything outside the valid region given by the shared ``region`` parameter (native kernel)."""

    def __init__(self, region: Parameter) -> None:
        super().__init__()
        self.region = region
        self.mask_op = native.mask_op()

    def construct(self, x):
        return self.mask_op(x, self.region)
