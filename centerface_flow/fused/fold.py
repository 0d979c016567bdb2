"""BatchNorm folding for inference: every (conv | transposed conv) → BatchNorm pair becomes one conv with a bias.

With running statistics ``mean``, ``var``, affine ``gamma``, ``beta`` and ``eps``, BatchNorm after a convolution
``y = W * x (+ b)`` is ``gamma * (y - mean) / sqrt(var + eps) + beta``, i.e. the convolution with

    W' = W · s (per output channel),  b' = (b - mean) · s + beta,  s = gamma / sqrt(var + eps).

Output channels are axis 0 of a ``Conv2d`` weight (out, in/groups, kh, kw) and axis 1 of a ``Conv2dTranspose``
weight (in, out, kh, kw) in MindSpore. :func:`fold_bn` rewrites a network in place for inference (BatchNorm cells
become ``nn.Identity``); with the native kernels, a depthwise 3×3 conv followed by its BatchNorm and ReLU / ReLU6
becomes one :class:`~centerface_flow.fused.cells.FusedDepthwiseConv3x3` (a single kernel call), which also
applies the bias and activation of the 1×1 expansion conv before it to its input (MindSpore's separate BiasAdd and
ReLU passes over the expanded tensors cost as much as the depthwise convs themselves). Without them
every conv is kept as MindSpore's ``Conv2d`` / ``Conv2dTranspose`` with a bias (exportable to ONNX / MINDIR).
Parameter names are kept (``<conv>.weight``) and biases are named ``<conv>.bias``; :func:`folded_parameters`
returns the folded tensors as numpy arrays (the exports and tests use them).

With the native kernels the folded network can also run on inputs zero-padded at the bottom / right with outputs
equal to the unpadded run inside the valid region (:func:`set_valid_region`; the same function, not an
approximation: only float32 rounding differs, where oneDNN sums in another order for another tensor size;
measured ≤ 4e-7 on scores over 20 WIDER images): the depthwise kernels
treat everything past the image as the convolution's own zero padding, and so does the native dense 3×3 conv of the
neck (with MindSpore's conv there instead, the padded region is zeroed before it); the first conv's input is padded
with zeros anyway, and 1×1 convs, 2×2 stride-2 transposed convs, sums and activations never move values across
positions.
This lets the test stage bucket image sizes so a few compiled graphs serve all images
(:mod:`centerface_flow.inference.backends`).

The folded network computes the same function as the original in inference mode (``set_train(False)``), up to
float32 rounding (``tests/test_fold.py`` checks ≤ 1e-4 relative on the four outputs); it cannot be trained.
"""
from __future__ import annotations

import logging
import time

import numpy as np

__all__ = ["REGION_NAME", "fold_bn", "fold_pair", "folded_parameters", "set_valid_region"]

#: Name of the (4,) valid-region parameter shared by the native kernels of a folded network.
REGION_NAME = "valid_region"

log = logging.getLogger(__name__)


def fold_pair(weight: np.ndarray, bias: np.ndarray | None, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray,
              var: np.ndarray, eps: float, transposed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Fold one BatchNorm into the preceding conv: returns (weight', bias') float32 (see the module docstring)."""
    scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    axis = 1 if transposed else 0
    shape = [1] * weight.ndim
    shape[axis] = -1
    new_w = np.asarray(weight, np.float64) * scale.reshape(shape)
    b = np.zeros_like(scale) if bias is None else np.asarray(bias, np.float64)
    new_b = (b - np.asarray(mean, np.float64)) * scale + np.asarray(beta, np.float64)
    return new_w.astype(np.float32), new_b.astype(np.float32)


def _pairs(net):
    """(name of SequentialCell, sequential, index of conv) for every conv directly followed by a BatchNorm2d."""
    from mindspore import nn

    for name, cell in net.cells_and_names():
        if not isinstance(cell, nn.SequentialCell):
            continue
        items = list(cell)
        for i in range(len(items) - 1):
            if isinstance(items[i], (nn.Conv2d, nn.Conv2dTranspose)) and isinstance(items[i + 1], nn.BatchNorm2d):
                yield name, cell, i


def _fold_cells(conv, bn) -> tuple[np.ndarray, np.ndarray]:
    from mindspore import nn

    bias = conv.bias.asnumpy() if getattr(conv, "has_bias", False) and conv.bias is not None else None
    return fold_pair(conv.weight.asnumpy(), bias, bn.gamma.asnumpy(), bn.beta.asnumpy(), bn.moving_mean.asnumpy(),
                     bn.moving_variance.asnumpy(), float(bn.eps), transposed=isinstance(conv, nn.Conv2dTranspose))


def folded_parameters(net) -> dict[str, np.ndarray]:
    """The parameters of ``net`` with every conv → BatchNorm pair folded: ``{name: array}`` without BatchNorm
    entries; a folded conv has ``<prefix>.weight`` and ``<prefix>.bias``."""
    params = {p.name: p.asnumpy() for p in net.get_parameters()}
    for name, seq, i in _pairs(net):
        conv, bn = seq[i], seq[i + 1]
        w, b = _fold_cells(conv, bn)
        prefix = conv.weight.name.rsplit(".", 1)[0]
        params[conv.weight.name] = w
        params[f"{prefix}.bias"] = b
        for p in bn.get_parameters():
            params.pop(p.name, None)
    return params


def set_valid_region(net, padded_hw: tuple[int, int], image_hw: tuple[int, int]) -> bool:
    """Tell a folded network with native kernels that its next inputs are (H0, W0) = ``padded_hw`` zero-padded at
    the bottom / right around a (h0, w0) = ``image_hw`` image; returns False (nothing set) for other networks.

    The valid region of every output then equals the unpadded image's outputs (up to float32 rounding; see the
    module docstring).
    ``padded_hw == image_hw`` (or never calling this) means no padding.
    """
    import mindspore as ms

    from centerface_flow.ops import native

    region = getattr(net, "valid_region", None)
    if region is None:
        return False
    values = (np.zeros(4, np.float32) if tuple(padded_hw) == tuple(image_hw)
              else native.valid_region(padded_hw, image_hw))
    if not np.array_equal(region.asnumpy(), values):
        region.set_data(ms.Tensor(values))
    return True


def _fuse_input_activations(net) -> int:
    """In every folded (1×1 conv + bias, activation) → fused depthwise pair of sibling cells, move the conv's bias
    and the activation into the depthwise kernel (``FusedDepthwiseConv3x3.fuse_input_activation``)."""
    from mindspore import nn

    from centerface_flow.fused.cells import FusedDepthwiseConv3x3

    names = {nn.ReLU: "relu", nn.ReLU6: "relu6"}
    count = 0
    for _, seq in net.cells_and_names():
        if not isinstance(seq, nn.SequentialCell):
            continue
        items = list(seq)
        for first, second in zip(items, items[1:]):
            fa, fb = getattr(first, "features", None), getattr(second, "features", None)
            if not isinstance(fa, nn.SequentialCell) or not isinstance(fb, nn.SequentialCell) or len(fa) != 3:
                continue
            conv, act, dw = fa[0], fa[2], fb[0]
            if (isinstance(dw, FusedDepthwiseConv3x3) and not dw.has_pre and isinstance(conv, nn.Conv2d)
                    and conv.has_bias and tuple(conv.kernel_size) == (1, 1) and names.get(type(act)) == dw.activation):
                dw.fuse_input_activation(conv.bias)
                conv.has_bias = False
                fa[2] = nn.Identity()
                count += 1
    return count


def _is_pointwise(conv) -> bool:
    from mindspore import nn

    return (isinstance(conv, nn.Conv2d) and conv.group == 1 and tuple(conv.kernel_size) == (1, 1)
            and tuple(conv.stride)[-2:] == (1, 1) and conv.padding == 0 and tuple(conv.dilation)[-2:] == (1, 1))


def _is_dense3x3(conv) -> bool:
    """A dense 3×3 convolution with padding 1 and stride 1 or 2 (the stem conv, the neck's ``conv_last``)."""
    from mindspore import nn

    return (isinstance(conv, nn.Conv2d) and conv.group == 1 and tuple(conv.kernel_size) == (3, 3)
            and conv.pad_mode == "pad" and conv.padding == 1 and tuple(conv.dilation)[-2:] == (1, 1)
            and tuple(conv.stride)[-2:] in ((1, 1), (2, 2)))


def _is_convt2x2(conv) -> bool:
    """A 2×2 stride-2 transposed convolution without padding (output exactly twice the input size)."""
    from mindspore import nn

    return (isinstance(conv, nn.Conv2dTranspose) and conv.group == 1 and tuple(conv.kernel_size) == (2, 2)
            and tuple(conv.stride)[-2:] == (2, 2) and conv.padding == 0 and tuple(conv.dilation)[-2:] == (1, 1))


def _activation_after(bn, after) -> str:
    """The activation ("", "relu", "relu6") applied after a BatchNorm: fused into it (``activation`` attribute) or
    the next cell."""
    from mindspore import nn

    return getattr(bn, "activation", "") or {nn.ReLU: "relu", nn.ReLU6: "relu6"}.get(type(after), "")


def _copies(*params) -> list:
    """(name, Tensor copy) of each parameter: the arguments of the fused cells, which own new parameters."""
    from mindspore import Tensor

    return [(p.name, Tensor(p.asnumpy())) for p in params]


def _fuse_blocks(net, region) -> int:
    """Replace every folded inverted-residual block ([1×1 →] depthwise → 1×1, all native) by one
    :class:`~centerface_flow.fused.cells.FusedBlock` (a single kernel call; ``InvertedResidual.whole``)."""
    from mindspore import nn

    from centerface_flow.fused.cells import FusedBlock, FusedDepthwiseConv3x3, FusedPointwise, attach
    from centerface_flow.nets.mobilenetv2 import InvertedResidual
    from centerface_flow.ops import irblock

    if not irblock.available():
        return 0
    count = 0
    for _, cell in list(net.cells_and_names()):
        if not isinstance(cell, InvertedResidual) or cell.fused_whole:
            continue
        layers = [c for sub in cell.conv for c in (sub.features if hasattr(sub, "features") else [sub])
                  if not isinstance(c, nn.Identity)]
        if len(layers) not in (2, 3):
            continue
        expand, (dw, project) = (layers[0] if len(layers) == 3 else None), layers[-2:]
        if not (isinstance(expand, (FusedPointwise, type(None))) and isinstance(dw, FusedDepthwiseConv3x3)
                and isinstance(project, FusedPointwise)):
            continue
        if (dw.activation not in ("relu", "relu6") or project.activation or project.has_residual or dw.has_pre
                or (expand is None and cell.use_res_connect)
                or (expand is not None and (expand.activation != dw.activation or expand.has_residual))):
            continue
        weights = (dw.weight, dw.bias, project.weight, project.bias)
        if expand is not None:
            weights = (expand.weight, expand.bias, *weights)
        params = _copies(*weights)
        cell.conv = nn.Identity()  # the layers' parameters now live in the fused block (same names)
        attach(cell, "whole", FusedBlock(params, dw.stride, dw.activation, cell.use_res_connect, region))
        cell.fused_whole = True
        count += 1
    return count


def _fuse_stem(net, region) -> int:
    """Replace the stem (a folded native dense 3×3 stride-2 conv) and the fused block after it, when that block has
    no expansion, a stride of 1 and no residual, by one :class:`~centerface_flow.fused.cells.FusedStemBlock`."""
    from mindspore import nn

    from centerface_flow.fused.cells import FusedConv3x3, FusedStemBlock, attach
    from centerface_flow.nets.mobilenetv2 import ConvBNAct, InvertedResidual

    count = 0
    for _, seq in list(net.cells_and_names()):
        if not isinstance(seq, nn.SequentialCell) or len(seq) < 2:
            continue
        stem, block = seq[0], seq[1]
        if not (isinstance(stem, ConvBNAct) and isinstance(block, InvertedResidual) and block.fused_whole):
            continue
        conv, whole = stem.features[0], block.whole
        if not (isinstance(conv, FusedConv3x3) and conv.stride == 2 and conv.activation in ("relu", "relu6")
                and not whole.expand and whole.stride == 1 and not whole.residual
                and whole.activation == conv.activation):
            continue
        params = _copies(conv.weight, conv.bias, whole.wd, whole.bd, whole.wp, whole.bp)
        attach(seq, 0, FusedStemBlock(params, conv.activation, region))
        seq[1] = nn.Identity()
        count += 1
    return count


def _fuse_sums(net) -> int:
    """Move the lateral sum of every IDA-up node into the native 1×1 kernel that ends its lateral branch
    (``FusedPointwise.add_residual``). (Inverted-residual blocks add their residual inside their fused block.)"""
    from mindspore import nn

    from centerface_flow.fused.cells import FusedPointwise, attach
    from centerface_flow.nets.centerface import IDAUp

    count = 0
    for _, cell in list(net.cells_and_names()):
        if isinstance(cell, IDAUp) and not cell.fused_sum:
            items = [c for c in cell.conv if not isinstance(c, nn.Identity)]
            if len(items) == 1 and isinstance(items[0], FusedPointwise):
                items[0].add_residual()
                attach(cell, "lateral", items[0])
                cell.fused_sum = True
                count += 1
    return count


def _fuse_heads(net) -> int:
    """Run the four biased 1×1 heads (and the heatmap's sigmoid) as one native kernel call."""
    from mindspore import Tensor, nn

    from centerface_flow.fused.cells import FusedHeads, attach

    hm = getattr(net, "hm_head", None)
    convs = [hm[0] if isinstance(hm, nn.SequentialCell) else None] + [getattr(net, name, None)
                                                                      for name in ("wh_head", "off_head", "kps_head")]
    if not (isinstance(hm, nn.SequentialCell) and len(hm) == 2 and isinstance(hm[1], nn.Sigmoid)
            and all(c is not None and _is_pointwise(c) and c.has_bias for c in convs)):
        return 0
    params = []
    for conv in convs:
        prefix = conv.weight.name.rsplit(".", 1)[0]
        params += [(conv.weight.name, Tensor(conv.weight.asnumpy())), (f"{prefix}.bias", Tensor(conv.bias.asnumpy()))]
    for name in ("hm_head", "wh_head", "off_head", "kps_head"):  # their parameters now live in the fused cell
        setattr(net, name, nn.Identity())
    attach(net, "heads", FusedHeads(params))
    net.fused_heads = True
    return 4


def _fuse_conv_heads(net) -> int:
    """Run the neck's last 3×3 convolution and the fused heads as one native kernel call
    (:class:`~centerface_flow.fused.cells.FusedConvHeads`): its output, the heads' input, is then never written."""
    from mindspore import nn

    from centerface_flow.fused.cells import FusedConv3x3, FusedConvHeads, FusedHeads, attach

    last = getattr(getattr(net, "dla_up", None), "conv_last", None)
    if not (getattr(net, "fused_heads", False) and isinstance(net.heads, FusedHeads) and last is not None
            and isinstance(last[0], FusedConv3x3) and last[0].stride == 1 and last[0].activation == "relu"
            and all(isinstance(c, nn.Identity) for c in list(last)[1:])):
        return 0
    attach(net, "heads", FusedConvHeads(last[0], net.heads))
    last[0] = nn.Identity()
    return 1


def _fuse_up_sums(net) -> int:
    """Run the neck's last IDA-up node (``dla_up.up3``, whose lateral 1×1 conv already adds the upsampled branch,
    :func:`_fuse_sums`) as one native kernel call with that branch's transposed conv
    (:class:`~centerface_flow.fused.cells.FusedUpSum`): the upsampled map, a quarter of the input size, is then never
    written. The node's ``up`` is left as identities, so it passes x0 on unchanged. The coarser nodes stay two calls:
    the kernel works row by row in tiles of 16 of x0's pixels, and their rows (a 32nd and a 16th of the input width)
    are one or two tiles wide, mostly padding; measured at 640×480 they took 0.10 and 0.16 ms fused against 0.07 and
    0.14 ms as two calls, the last node 0.42 ms against 0.62 ms."""
    from mindspore import nn

    from centerface_flow.fused.cells import FusedConvTranspose2x2, FusedPointwise, FusedUpSum, attach
    from centerface_flow.nets.centerface import IDAUp

    node = getattr(getattr(net, "dla_up", None), "up3", None)
    if not (isinstance(node, IDAUp) and node.fused_sum and isinstance(node.lateral, FusedPointwise)
            and node.lateral.activation == "relu"):
        return 0
    up = list(node.up)
    if not (isinstance(up[0], FusedConvTranspose2x2) and up[0].activation == "relu"
            and all(isinstance(c, nn.Identity) for c in up[1:])):
        return 0
    attach(node, "lateral", FusedUpSum(up[0], node.lateral))
    node.up[0] = nn.Identity()
    return 1


def fold_bn(net, use_native: bool | None = None):
    """Fold every BatchNorm of ``net`` into its convolution, in place; returns ``net`` in inference mode.

    ``use_native`` chooses the fused depthwise implementation (None: :func:`centerface_flow.ops.native.enabled`).
    """
    from mindspore import Parameter, Tensor, nn

    from centerface_flow.fused.cells import (
        FusedConv3x3,
        FusedConvTranspose2x2,
        FusedDepthwiseConv3x3,
        FusedPointwise,
        ValidMask,
    )
    from centerface_flow.ops import dense, native, pointwise

    use_native = native.enabled() if use_native is None else use_native
    use_pw = use_native and pointwise.available()
    use_dense = use_native and dense.available()
    net.set_train(False)
    region = Parameter(Tensor(np.zeros(4, np.float32)), name=REGION_NAME, requires_grad=False)
    count = 0
    for _, seq, i in list(_pairs(net)):
        conv, bn = seq[i], seq[i + 1]
        w, b = _fold_cells(conv, bn)
        prefix = conv.weight.name.rsplit(".", 1)[0]
        after = seq[i + 2] if i + 2 < len(seq) else None
        # the activation after the BatchNorm: its own cell, or fused into the BatchNorm (BatchNormAct, training)
        activation = _activation_after(bn, after)
        is_dw = (isinstance(conv, nn.Conv2d) and conv.group > 1 and conv.group == conv.in_channels == conv.out_channels
                 and tuple(conv.kernel_size) == (3, 3) and conv.padding == 1 and conv.pad_mode == "pad")
        if is_dw and use_native:
            new = FusedDepthwiseConv3x3(Tensor(w), Tensor(b), conv.stride[0], activation, conv.weight.name,
                                        f"{prefix}.bias", region)
        elif use_pw and _is_pointwise(conv):
            new = FusedPointwise(Tensor(w), Tensor(b), activation, conv.weight.name, f"{prefix}.bias")
        elif use_dense and _is_dense3x3(conv):
            new = FusedConv3x3(Tensor(w), Tensor(b), conv.stride[-1], activation, conv.weight.name, f"{prefix}.bias",
                               region)
        elif use_dense and _is_convt2x2(conv) and activation in ("", "relu"):
            new = FusedConvTranspose2x2(Tensor(w), Tensor(b), activation, conv.weight.name, f"{prefix}.bias")
        else:
            new = conv
            new.weight.set_data(Tensor(w))
            new.bias = Parameter(Tensor(b), name=f"{prefix}.bias", requires_grad=False)
            new.has_bias = True
            if not hasattr(new, "bias_add"):
                from mindspore import ops

                new.bias_add = ops.BiasAdd()
        seq[i] = new
        seq[i + 1] = nn.Identity()
        if new is not conv and activation:  # the fused cell applies the activation
            seq[i + 2] = nn.Identity()
        elif new is conv and getattr(bn, "activation", ""):  # fused into the BatchNorm cell: back to its own slot
            seq[i + 2] = {"relu": nn.ReLU, "relu6": nn.ReLU6}[bn.activation]()
        count += 1
    if use_native:
        count_pre = _fuse_input_activations(net)
        log.debug("fused %d 1x1-conv bias + activation pairs into the depthwise kernels", count_pre)
    if use_pw:
        log.debug("fused %d whole inverted-residual blocks", _fuse_blocks(net, region))
        if use_dense:
            log.debug("fused %d stems with their first block", _fuse_stem(net, region))
        log.debug("fused %d lateral sums and %d heads into the 1x1 kernels", _fuse_sums(net), _fuse_heads(net))
    if use_native and hasattr(net, "dla_up"):
        # a native conv_last reads only the valid region itself; MindSpore's needs the padded region zeroed first
        if not isinstance(net.dla_up.conv_last[0], FusedConv3x3):
            net.dla_up.valid_mask = ValidMask(region)
        net.valid_region = region  # the runner sets it per call (set_valid_region)
        if use_dense and use_pw:
            log.debug("fused %d neck conv_last with the heads and %d upsampling with its lateral sum",
                      _fuse_conv_heads(net), _fuse_up_sums(net))
    region.name = REGION_NAME  # cells that share it prefixed its name when they were inserted
    net.set_train(False)
    # MindSpore caches compiled graphs by (phase, cell creation time, id); a new creation time makes a network that
    # already ran in graph mode compile its folded form instead of reusing the unfolded graph.
    if "_create_time" in vars(net):
        vars(net)["_create_time"] = time.time_ns()
    log.debug("folded %d BatchNorms", count)
    return net
