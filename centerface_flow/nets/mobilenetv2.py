"""MobileNetV2 backbone (torchvision ``features`` 0-17) returning the four CenterFace taps.

Cells and attribute names follow the MindSpore model zoo's ``research/cv/centerface/src/mobile_v2.py`` so that
parameter names are identical (``base.need_fp1.0.features.0.weight`` ...), which lets the zoo's checkpoints and its
torchvision name map apply. ``need_fp1`` holds features 0-3 (stride 4, 24 ch), ``need_fp2`` 4-6 (stride 8, 32 ch),
``need_fp3`` 7-13 (stride 16, 96 ch) and ``need_fp4`` 14-17 (stride 32, 320 ch).

The activation after each expanding / depthwise convolution is ReLU6 in torchvision and the zoo, plain ReLU in the
authors' released model; it is a constructor argument. Weights are initialised by ``centerface_flow.nets.init``.
"""
from __future__ import annotations

from mindspore import nn

from centerface_flow.nets.batchnorm import BatchNormAct, make_activation
from centerface_flow.nets.dense import Conv3x3
from centerface_flow.nets.depthwise import DepthwiseConv3x3
from centerface_flow.nets.layout import FEATURE_CHANNELS, INVERTED_RESIDUAL_SETTING, TAPS
from centerface_flow.nets.pointwise import PointwiseConv

__all__ = ["FEATURE_CHANNELS", "INVERTED_RESIDUAL_SETTING", "TAPS", "ConvBNAct", "InvertedResidual", "MobileNetV2"]


class ConvBNAct(nn.Cell):
    """Conv (no bias) + BatchNorm (eps 1e-5, momentum 0.9) + activation; parameters under ``features.{0,1}``.

    The activation is fused into the BatchNorm cell (:class:`~centerface_flow.nets.batchnorm.BatchNormAct`);
    ``features.2`` is an ``nn.Identity``.

    A 3×3 depthwise conv is a :class:`~centerface_flow.nets.depthwise.DepthwiseConv3x3` and a 1×1 conv a
    :class:`~centerface_flow.nets.pointwise.PointwiseConv` (``nn.Conv2d`` subclasses that run the native kernels
    when they are enabled).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 activation: str = "relu6") -> None:
        super().__init__()
        padding = (kernel_size - 1) // 2
        if groups > 1 and groups == in_ch == out_ch and kernel_size == 3:
            conv = DepthwiseConv3x3(out_ch, stride)  # native kernel on CPU (centerface_flow.ops.native)
        elif kernel_size == 1 and stride == 1 and groups == 1:
            conv = PointwiseConv(in_ch, out_ch)  # native GEMM on CPU (centerface_flow.ops.pointwise)
        elif kernel_size == 3 and stride in (1, 2) and groups == 1:
            conv = Conv3x3(in_ch, out_ch, stride)  # the stem; native kernels on CPU (centerface_flow.ops.dense)
        else:
            conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, pad_mode="pad", padding=padding, has_bias=False,
                             group=groups)
        make_activation(activation)  # validates the name
        # BatchNorm + activation in one cell (native training kernel); the Identity keeps the zoo's cell indices
        self.features = nn.SequentialCell([
            conv,
            BatchNormAct(out_ch, eps=1e-5, momentum=0.9, activation=activation),
            nn.Identity(),
        ])

    def construct(self, x):
        return self.features(x)


class InvertedResidual(nn.Cell):
    """Expand (1x1, skipped when t == 1) -> depthwise 3x3 -> linear 1x1 + BN, residual when shapes allow.

    :func:`centerface_flow.fused.fold.fold_bn` (native kernels) may replace the whole block by one cell ``whole``
    (``fused_whole``).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int, activation: str = "relu6") -> None:
        super().__init__()
        hidden = in_ch * expand_ratio
        self.use_res_connect = stride == 1 and in_ch == out_ch
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_ch, hidden, kernel_size=1, activation=activation))
        layers.extend([
            ConvBNAct(hidden, hidden, stride=stride, groups=hidden, activation=activation),
            PointwiseConv(hidden, out_ch),
            BatchNormAct(out_ch, eps=1e-5, momentum=0.9),
        ])
        self.conv = nn.SequentialCell(layers)
        self.fused_whole = False
        self.whole = None

    def construct(self, x):
        if self.fused_whole:
            return self.whole(x)
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Cell):
    """MobileNetV2 (width 1.0) features 0-17.

    ``construct(x: (N, 3, H, W)) -> (x1, x2, x3, x4)`` with shapes (N, 24, H/4, W/4), (N, 32, H/8, W/8),
    (N, 96, H/16, W/16), (N, 320, H/32, W/32).
    """

    def __init__(self, activation: str = "relu6") -> None:
        super().__init__()
        in_ch = 32
        features = [ConvBNAct(3, in_ch, stride=2, activation=activation)]
        groups = []
        for index, (t, c, n, s) in enumerate(INVERTED_RESIDUAL_SETTING):
            for i in range(n):
                features.append(InvertedResidual(in_ch, c, s if i == 0 else 1, t, activation=activation))
                in_ch = c
            if index in TAPS:
                groups.append(nn.SequentialCell(features))
                features = []
        self.need_fp1, self.need_fp2, self.need_fp3, self.need_fp4 = groups
        self.feat_channel = list(FEATURE_CHANNELS)

    def construct(self, x):
        x1 = self.need_fp1(x)
        x2 = self.need_fp2(x1)
        x3 = self.need_fp3(x2)
        x4 = self.need_fp4(x3)
        return x1, x2, x3, x4
