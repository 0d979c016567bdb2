"""Weight initialisation as the model zoo's ``default_recurisive_init`` (``research/cv/centerface/src/var_init.py``).

* head convs (cell names containing ``hm``, ``wh``, ``off`` or ``kps``): weight ~ N(0, 0.001^2), bias 0;
* every other ``Conv2d``: Kaiming normal, fan-out, gain sqrt(2) (std = sqrt(2 / (out_ch * kh * kw))), bias 0;
* ``Conv2dTranspose``: Kaiming uniform, a = sqrt(5), fan-out computed on MindSpore's (in, out, kh, kw) weight
  layout, i.e. U(-b, b) with b = 1 / sqrt(in_ch * kh * kw); bias 0;
* BatchNorm: gamma 1, beta 0 (running statistics keep MindSpore's 0 / 1).

Random numbers come from ``numpy.random.default_rng(seed)`` so a seed reproduces the same network.
"""
from __future__ import annotations

import math

import numpy as np
from mindspore import Tensor, nn

__all__ = ["HEAD_INIT_STD", "init_centerface"]

#: Standard deviation of the head convolutions' initial weights.
HEAD_INIT_STD = 0.001
_HEAD_TAGS = ("hm", "wh", "off", "kps")


def _fan_out(shape: tuple[int, ...]) -> int:
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return int(shape[0]) * receptive


def _set(param, value: np.ndarray) -> None:
    param.set_data(Tensor(value.astype(np.float32)))


def init_centerface(net: nn.Cell, seed: int = 0) -> None:
    """Re-initialise every conv / transposed conv / BatchNorm of ``net`` in place (see module docstring)."""
    rng = np.random.default_rng(seed)
    for name, cell in net.cells_and_names():
        if isinstance(cell, nn.Conv2dTranspose):
            shape = tuple(cell.weight.shape)
            bound = math.sqrt(3.0) * math.sqrt(2.0 / (1.0 + 5.0)) / math.sqrt(_fan_out(shape))
            _set(cell.weight, rng.uniform(-bound, bound, shape))
        elif isinstance(cell, nn.Conv2d):
            shape = tuple(cell.weight.shape)
            is_head = any(tag in name for tag in _HEAD_TAGS)
            std = HEAD_INIT_STD if is_head else math.sqrt(2.0) / math.sqrt(_fan_out(shape))
            _set(cell.weight, rng.normal(0.0, std, shape))
        elif isinstance(cell, nn.BatchNorm2d):
            _set(cell.gamma, np.ones(cell.gamma.shape))
            _set(cell.beta, np.zeros(cell.beta.shape))
            continue
        else:
            continue
        if cell.bias is not None:
            _set(cell.bias, np.zeros(cell.bias.shape))
