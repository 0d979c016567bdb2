"""CenterFace: MobileNetV2 backbone + IDA-up neck + heatmap / size / offset / landmark heads.

Parameter names equal the MindSpore model zoo's (``research/cv/centerface/src/centerface.py``): ``base.*`` backbone,
``dla_up.conv`` (top 1x1 lateral), ``dla_up.up{1,2,3}.{up,conv}`` (2x2 stride-2 transposed conv + BN + ReLU and
1x1 lateral + BN + ReLU, summed), ``dla_up.conv_last`` (3x3 conv + BN + ReLU), heads ``hm_head.0``, ``wh_head``,
``off_head``, ``kps_head``. BatchNorm settings per layer follow the zoo: backbone eps 1e-5 / momentum 0.9,
neck eps 1e-3 / momentum 0.9, ``conv_last`` eps 1e-5 / momentum 0.99 (MindSpore momentum: weight of the old
running value).

Output channel conventions are the model zoo's (see ``centerface_flow.inference.decode``): size = (log(w/16), log(h/16))
in input pixels, offset = (dx, dy), landmarks = (x0, y0, ..., x4, y4).
"""
from __future__ import annotations

import itertools

from mindspore import nn, ops

from centerface_flow.nets.batchnorm import BatchNormAct
from centerface_flow.nets.dense import Conv3x3, ConvTranspose2x2
from centerface_flow.nets.init import init_centerface
from centerface_flow.nets.mobilenetv2 import FEATURE_CHANNELS, MobileNetV2
from centerface_flow.nets.pointwise import PointwiseConv
from centerface_flow.ops.pointwise import pointwise_op, use_pointwise

__all__ = ["HEAD_CHANNELS", "STRIDE", "CenterFace", "IDAUp", "MobileNetUp"]

#: Output stride of every head.
STRIDE = 4
#: Output channels of (heatmap, size, offset, landmarks).
HEAD_CHANNELS = (1, 2, 2, 10)
#: Where each head's channels start in the heads stacked in that order (and where the last ends).
_HEAD_BOUNDS = tuple(itertools.accumulate(HEAD_CHANNELS, initial=0))


def _conv1x1(in_ch: int, out_ch: int, has_bias: bool = False) -> nn.Conv2d:
    if not has_bias:
        return PointwiseConv(in_ch, out_ch)  # native GEMM on CPU (centerface_flow.ops.pointwise)
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=1, pad_mode="pad", padding=0, has_bias=True)


class IDAUp(nn.Cell):
    """``up(x0) + conv(x1)``: x0 (N, C, h, w) upsampled x2 by a 2x2 stride-2 transposed conv, x1 (N, Cin, 2h, 2w).

    :func:`centerface_flow.fused.fold.fold_bn` (native kernels) may replace ``conv`` by ``lateral``, a cell that adds
    the upsampled branch inside its kernel (``fused_sum``).
    """

    def __init__(self, out_dim: int, channel: int) -> None:
        super().__init__()
        self.up = nn.SequentialCell([
            ConvTranspose2x2(out_dim, out_dim),  # native kernels on CPU (centerface_flow.ops.dense)
            BatchNormAct(out_dim, eps=1e-3, momentum=0.9, activation="relu"),
            nn.Identity(),
        ])
        self.conv = nn.SequentialCell([
            _conv1x1(channel, out_dim),
            BatchNormAct(out_dim, eps=1e-3, momentum=0.9, activation="relu"),
            nn.Identity(),
        ])
        self.fused_sum = False
        self.lateral = None

    def construct(self, x0, x1):
        if self.fused_sum:
            return self.lateral(x1, self.up(x0))
        return self.up(x0) + self.conv(x1)


class MobileNetUp(nn.Cell):
    """The IDA-up neck: four backbone taps -> (N, out_dim, H/4, W/4)."""

    def __init__(self, channels=FEATURE_CHANNELS, out_dim: int = 24) -> None:
        super().__init__()
        channels = list(channels)[::-1]
        self.conv = nn.SequentialCell([
            _conv1x1(channels[0], out_dim),
            BatchNormAct(out_dim, eps=1e-3, momentum=0.9, activation="relu"),
            nn.Identity(),
        ])
        self.conv_last = nn.SequentialCell([
            Conv3x3(out_dim, out_dim),  # native kernels on CPU (centerface_flow.ops.dense)
            BatchNormAct(out_dim, eps=1e-5, momentum=0.99, activation="relu"),
            nn.Identity(),
        ])
        self.up1 = IDAUp(out_dim, channels[1])
        self.up2 = IDAUp(out_dim, channels[2])
        self.up3 = IDAUp(out_dim, channels[3])
        # Set by centerface_flow.fused.fold.fold_bn (native kernels): zeroes the padded region before the 3x3 conv_last.
        self.valid_mask = None

    def construct(self, x1, x2, x3, x4):
        x = self.conv(x4)
        x = self.up1(x, x3)
        x = self.up2(x, x2)
        x = self.up3(x, x1)
        if self.valid_mask is not None:
            x = self.valid_mask(x)
        return self.conv_last(x)


class CenterFace(nn.Cell):
    """CenterFace network.

    Args:
        head_width: channels of the neck output feeding the heads (24 = released model, 64 = model-zoo default).
        activation: backbone activation, ``"relu"`` (released model) or ``"relu6"`` (torchvision / model zoo).
        init_seed: seed of the model-zoo initialisation (``centerface_flow.nets.init``); ``None`` keeps
            MindSpore's default initialisers (useful when weights are loaded right away).

    ``construct(x: (N, 3, H, W) float32, H and W multiples of 32)`` returns ``(heatmap (N, 1, H/4, W/4) in
    [0, 1], size (N, 2, H/4, W/4), offset (N, 2, H/4, W/4), landmarks (N, 10, H/4, W/4))``.
    """

    def __init__(self, head_width: int = 24, activation: str = "relu", init_seed: int | None = 0) -> None:
        super().__init__()
        self.head_width = int(head_width)
        self.activation = activation
        self.base = MobileNetV2(activation=activation)
        self.dla_up = MobileNetUp(self.base.feat_channel, out_dim=self.head_width)
        self.hm_head = nn.SequentialCell([_conv1x1(self.head_width, 1, has_bias=True), nn.Sigmoid()])
        self.wh_head = _conv1x1(self.head_width, 2, has_bias=True)
        self.off_head = _conv1x1(self.head_width, 2, has_bias=True)
        self.kps_head = _conv1x1(self.head_width, 10, has_bias=True)
        # Set by centerface_flow.fused.fold.fold_bn (native kernels): the four heads as one cell.
        self.fused_heads = False
        self.heads = None
        # With native kernels (training, unfolded networks): the four heads as one differentiable 1x1 convolution of
        # their stacked weights. As four MindSpore convolutions each of them read the 64-channel neck output
        # (N x 64 x H/4 x W/4) again in the forward pass and in both gradients: ~80 ms of a batch-8 512x512 step.
        self.heads_op = pointwise_op() if use_pointwise() else None
        if init_seed is not None:
            init_centerface(self, seed=init_seed)

    # Every graph-mode call of a Cell sets ``compile_phase`` on it, and MindSpore's setter walks all sub-cells (~100
    # here, 0.4 ms per call measured: over 1 % of a 640×480 inference). The phase is the same on every call after
    # the first, so the walk is skipped when the value does not change.
    @property
    def compile_phase(self):
        return nn.Cell.compile_phase.fget(self)

    @compile_phase.setter
    def compile_phase(self, value):
        if value != self._compile_phase:
            nn.Cell.compile_phase.fset(self, value)

    def construct(self, x):
        x1, x2, x3, x4 = self.base(x)
        x = self.dla_up(x1, x2, x3, x4)
        if self.fused_heads:
            return self.heads(x)
        if self.heads_op is not None:
            convs = (self.hm_head[0], self.wh_head, self.off_head, self.kps_head)
            w = ops.concat([c.weight for c in convs])
            y = ops.bias_add(self.heads_op(x, w), ops.concat([c.bias for c in convs]))
            b = _HEAD_BOUNDS
            return ops.sigmoid(y[:, b[0]:b[1]]), y[:, b[1]:b[2]], y[:, b[2]:b[3]], y[:, b[3]:b[4]]
        return self.hm_head(x), self.wh_head(x), self.off_head(x), self.kps_head(x)
