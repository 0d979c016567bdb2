"""A whole inverted-residual block for inference as one native operator (``kernels/block.cc``), and its numpy twin.

``expand 1×1 + bias + act → depthwise 3×3 + bias + act → project 1×1 + bias (+ input)`` with BatchNorm folded,
computed band by band so that the 6×-expanded tensor never leaves the cache (see the C++ file); and the network's
stem (dense 3×3 stride-2 conv + bias + act) fused with its first block (no expansion), whose full-resolution
32-channel tensor then never leaves the cache either. Used by
:func:`centerface_flow.fused.fold.fold_bn` when the native kernels are enabled and OpenBLAS is available
(:func:`centerface_flow.ops.pointwise.available`).
"""
from __future__ import annotations

from functools import cache

import numpy as np

from centerface_flow.ops import native, pointwise

__all__ = ["available", "block_forward", "block_op", "stem_block_forward", "stem_block_op"]


def available() -> bool:
    """Whether the block kernel library was built and OpenBLAS is installed."""
    return native.library_path() is not None and pointwise.available()


@cache
def block_op(stride: int, activation: str, residual: bool, expand: bool = True):
    """``op(x, we (E, Cin, 1, 1), be (E,), wd (E, 1, 3, 3), bd (E,), wp (Cout, E, 1, 1), bp (Cout,), region (4,))
    -> (N, Cout, Ho, Wo)``; ``region`` as in :func:`centerface_flow.ops.native.depthwise_op`. Inference only.
    ``expand=False`` (a block without expansion): ``op(x, wd, bd, wp, bp, region)``, the depthwise conv on x."""
    from mindspore import ops

    if stride not in (1, 2) or activation not in ("relu", "relu6") or (residual and (stride != 1 or not expand)):
        raise ValueError(f"unsupported block: stride {stride}, activation {activation!r}, residual {residual}")
    if not available():
        raise RuntimeError("native block kernel unavailable (library not built or scipy-openblas32 missing)")
    name = f"CfIr{'' if expand else 'Dw'}S{stride}{activation.capitalize()}{'Res' if residual else ''}"

    def out_shape(x, *weights):
        wp = weights[4] if expand else weights[2]
        return [x[0], wp[0], native.out_hw(x[2], stride), native.out_hw(x[3], stride)]

    return ops.Custom(f"{native.library_path()}:{name}", out_shape=out_shape, out_dtype=native.same_dtype,
                      func_type="aot")


def block_forward(x: np.ndarray, we: np.ndarray | None, be: np.ndarray | None, wd: np.ndarray, bd: np.ndarray,
                  wp: np.ndarray, bp: np.ndarray, stride: int, activation: str, residual: bool) -> np.ndarray:
    """Numpy twin (unpadded input): the layers one after the other (no expansion when ``we`` is None), float32."""
    h = x if we is None else pointwise.pw_forward(x, we, be, activation)
    h = native.dw3x3_forward(h, wd, stride, bd, activation)
    return pointwise.pw_forward(h, wp, bp, "", x if residual else None)


@cache
def stem_block_op(activation: str):
    """``op(x (N, Cin, H, W), ws (C, Cin, 3, 3), bs (C,), wd (C, 1, 3, 3), bd (C,), wp (Cout, C, 1, 1), bp (Cout,),
    region (4,)) -> (N, Cout, (H-1)//2+1, (W-1)//2+1)``: the stem conv (stride 2, padding 1) + bias + activation,
    then a block without expansion (depthwise stride 1 + bias + activation, projection + bias). Inference only;
    ``region`` as in :func:`centerface_flow.ops.native.depthwise_op` (the stem reads only the valid part of the
    input)."""
    from mindspore import ops

    if activation not in ("relu", "relu6"):
        raise ValueError(f"unsupported stem block activation {activation!r}")
    if native.library_path() is None:
        raise RuntimeError("native kernel library not built")

    def out_shape(x, *weights):
        return [x[0], weights[4][0], native.out_hw(x[2], 2), native.out_hw(x[3], 2)]

    return ops.Custom(f"{native.library_path()}:CfStemIrDw{activation.capitalize()}", out_shape=out_shape,
                      out_dtype=native.same_dtype, func_type="aot")


def stem_block_forward(x: np.ndarray, ws: np.ndarray, bs: np.ndarray, wd: np.ndarray, bd: np.ndarray, wp: np.ndarray,
                       bp: np.ndarray, activation: str, region: np.ndarray | None = None) -> np.ndarray:
    """Numpy twin of :func:`stem_block_op`: the stem conv (:func:`centerface_flow.ops.dense.conv3x3_forward`, zero
    outside the valid region) then :func:`block_forward` (outputs outside the valid region are not compared)."""
    from centerface_flow.ops import dense

    stem = dense.conv3x3_forward(x, ws, 2, bs, activation, region)
    return block_forward(stem, None, None, wd, bd, wp, bp, 1, activation, False)
