"""MobileNetV2 layout constants, importable without MindSpore (the ``.pth`` key map uses them)."""
from __future__ import annotations

__all__ = ["FEATURE_CHANNELS", "INVERTED_RESIDUAL_SETTING", "TAPS"]

#: (expansion t, output channels c, repeats n, first stride s) per stage, as in torchvision ``mobilenet_v2``.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
#: After which stage index each tap ends (``need_fp1`` .. ``need_fp4``).
TAPS = (1, 2, 4, 6)
#: Channels of the four taps (strides 4, 8, 16, 32).
FEATURE_CHANNELS = (24, 32, 96, 320)
