"""Native CPU kernels (``kernels/*.cc``) as MindSpore AOT custom operators, their numpy twins, and the switch.

The 3×3 depthwise convolution (padding 1, stride 1 or 2) is the slow operator of MobileNetV2 on MindSpore's CPU
backend (oneDNN gets plain NCHW tensors and runs it ~10× slower than ONNX Runtime). All ``kernels/*.cc`` are
compiled with the package (``setup.py``: g++ -O3, AVX-512 / AVX2 / baseline code chosen at load time) into one
library ``centerface_flow/_kernels/native.<ext suffix>`` (one worker-thread pool, ``kernels/cf_threads.h``, for
all kernels); :func:`library_path` finds it at run time and ``ops.Custom(func_type="aot")`` loads it. Depthwise
entry points (``kernels/depthwise.cc``): forward ``CfDw3x3S{1,2}`` (with a ``bprop``
made of ``CfDw3x3BackInputS*`` and ``CfDw3x3BackWeightS*``, so training uses the kernels too) and the inference-only
fused forward + bias (+ ReLU / ReLU6) ``CfDw3x3S{1,2}Bias{,Relu,Relu6}`` used by BatchNorm-folded networks
(:mod:`centerface_flow.fused.fold`).

Which implementation the network uses (:func:`enabled`), decided when a network is built:

* ``CENTERFACE_NATIVE_KERNELS=1``: native kernels (error if the library was not built);
* ``CENTERFACE_NATIVE_KERNELS=0``: MindSpore's own operators;
* unset (default): native on the CPU backend when the library is present, MindSpore's operators elsewhere (Ascend).

:func:`use_native` overrides it for a block (exports always build networks with MindSpore's own operators, since an
exported graph must not reference this machine's shared library).

Every kernel has a numpy twin here (``dw3x3_*``) that the tests compare with both the kernel and MindSpore's ops.
This module imports MindSpore only inside the functions that build operators.
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib.machinery
import logging
import os
from functools import cache
from pathlib import Path

import numpy as np

from centerface_flow.errors import UserError

__all__ = [
    "ACTIVATIONS",
    "ENV",
    "apply_activation",
    "call_kernel",
    "depthwise_op",
    "dw3x3_back_input",
    "dw3x3_back_weight",
    "dw3x3_forward",
    "enabled",
    "library_path",
    "mask_op",
    "out_hw",
    "same_dtype",
    "use_native",
    "valid_region",
]

log = logging.getLogger(__name__)

#: Environment switch: "1" forces the native kernels, "0" forces MindSpore's own operators.
ENV = "CENTERFACE_NATIVE_KERNELS"
#: Activations the fused inference kernels apply after the bias.
ACTIVATIONS = ("", "relu", "relu6")
_LIB_STEM = "native"
_override: bool | None = None


@cache
def library_path() -> Path | None:
    """The built kernel library (all ``kernels/*.cc``) inside the installed package, or None when it was not built."""
    folder = Path(__file__).resolve().parents[1] / "_kernels"
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = folder / f"{_LIB_STEM}{suffix}"
        if candidate.is_file():
            return candidate
    return None


@contextlib.contextmanager
def use_native(flag: bool | None):
    """Within the block, networks built choose native kernels iff ``flag`` (None: back to :func:`enabled`'s rule)."""
    global _override
    saved, _override = _override, flag
    try:
        yield
    finally:
        _override = saved


def enabled() -> bool:
    """Whether networks built now use the native kernels (see the module docstring for the rule)."""
    if _override is not None:
        return _override and _require_library()
    value = os.environ.get(ENV, "").strip()
    if value == "0":
        return False
    if value == "1":
        return _require_library()
    if value:
        raise UserError(f"{ENV}={value!r}: use 1 (native kernels) or 0 (MindSpore's operators), or leave it unset")
    if library_path() is None:
        log.info("native kernels not built; using MindSpore's depthwise convolution")
        return False
    import mindspore as ms

    return ms.get_context("device_target") == "CPU"


def _require_library() -> bool:
    if library_path() is None:
        raise UserError(f"{ENV}=1 but the native kernel library was not built; reinstall the package "
                        "(pip install -e .) with a C++ compiler available")
    return True


# ---------------------------------------------------------------------------------------------------------------
# MindSpore custom operators


def out_hw(size: int, stride: int) -> int:
    """Output size of a padding-1 3×3 window at ``stride`` over ``size`` (-1, an unknown size, stays -1)."""
    return -1 if size < 0 else (size - 1) // stride + 1


def _fwd_shape(stride: int):
    def infer(x_shape, *_):
        if len(x_shape) != 4:
            return list(x_shape)
        n, c, h, w = x_shape
        return [n, c, out_hw(h, stride), out_hw(w, stride)]

    return infer


def same_dtype(x_dtype, *_):
    """``out_dtype`` of the custom operators: the first input's dtype."""
    return x_dtype


@cache
def depthwise_op(stride: int, bias: bool = False, activation: str = "", valid: bool = False, pre: bool = False):
    """The 3×3 depthwise convolution (padding 1) as a MindSpore primitive.

    ``op(x (N, C, H, W), w (C, 1, 3, 3)) -> (N, C, Ho, Wo)`` with ``Ho = (H - 1) // stride + 1``; differentiable
    (native backward kernels). With ``bias=True``: ``op(x, w, b (C,))`` then ``activation`` ("", "relu",
    "relu6"), inference only (no gradient). With ``valid=True`` (needs ``bias``): ``op(x, w, b, region (4,))``
    computes only the valid region of a bottom/right zero-padded input, ``region = (H0, W0, h0, w0)`` the padded
    network-input size and the image inside it (``H0 <= 0``: not padded); see ``kernels/depthwise.cc``.
    With ``pre=True`` (needs ``valid`` and an activation): ``op(x, w, b, region, b_in (C,))`` convolves
    ``activation(x + b_in)``, the bias and activation of the preceding 1×1 conv fused in.
    """
    from mindspore import ops

    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride}")
    if activation not in ACTIVATIONS or (activation and not bias):
        raise ValueError(f"activation must be one of {ACTIVATIONS} (and needs bias=True), got {activation!r}")
    lib = library_path()
    if lib is None:
        _require_library()
    if valid and not bias:
        raise ValueError("valid=True needs bias=True (inference kernels)")
    if pre and not (valid and activation):
        raise ValueError("pre=True needs valid=True and an activation")
    if bias:
        act = activation.capitalize()
        name = f"CfDw3x3S{stride}{'Pre' + act if pre else ''}Bias{act}{'Valid' if valid else ''}"
        return ops.Custom(f"{lib}:{name}", out_shape=_fwd_shape(stride), out_dtype=same_dtype, func_type="aot")
    back_input = ops.Custom(f"{lib}:CfDw3x3BackInputS{stride}", out_shape=lambda x, w, dy: list(x),
                            out_dtype=same_dtype, func_type="aot")
    back_weight = ops.Custom(f"{lib}:CfDw3x3BackWeightS{stride}", out_shape=lambda x, dy: [x[1], 1, 3, 3],
                             out_dtype=same_dtype, func_type="aot")

    def bprop(x, w, out, dout):
        return back_input(x, w, dout), back_weight(x, dout)

    return ops.Custom(f"{lib}:CfDw3x3S{stride}", out_shape=_fwd_shape(stride), out_dtype=same_dtype,
                      func_type="aot", bprop=bprop)


@cache
def mask_op():
    """``op(x (N, C, H, W), region (4,)) -> x`` with everything outside the valid region zeroed (see
    :func:`depthwise_op`); placed before the neck's dense 3×3 conv of a padded network."""
    from mindspore import ops

    lib = library_path()
    if lib is None:
        _require_library()
    return ops.Custom(f"{lib}:CfMaskValid", out_shape=lambda x, region: list(x), out_dtype=same_dtype,
                      func_type="aot")


def valid_region(padded_hw: tuple[int, int], image_hw: tuple[int, int]) -> np.ndarray:
    """The ``region`` input of the valid-region kernels: (H0, W0, h0, w0) float32."""
    return np.array([*padded_hw, *image_hw], np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Direct calls (tests, benchmarks) and the numpy twins


def call_kernel(name: str, inputs: list[np.ndarray], out_shape):
    """Call the kernel library's entry point ``name`` on float32 ``inputs`` through ctypes; return the output of
    shape ``out_shape`` (a tuple of ints), or a tuple of outputs for a list of shapes."""
    lib_path = library_path()
    if lib_path is None:
        _require_library()
    lib = ctypes.CDLL(str(lib_path))
    arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in inputs]
    several = isinstance(out_shape, list)
    outs = [np.empty(shape, np.float32) for shape in (out_shape if several else [out_shape])]
    arrays.extend(outs)
    count = len(arrays)
    params = (ctypes.c_void_p * count)(*[a.ctypes.data for a in arrays])
    ndims = (ctypes.c_int * count)(*[a.ndim for a in arrays])
    shape_arrays = [(ctypes.c_int64 * max(a.ndim, 1))(*a.shape) for a in arrays]
    shapes = (ctypes.POINTER(ctypes.c_int64) * count)(
        *[ctypes.cast(s, ctypes.POINTER(ctypes.c_int64)) for s in shape_arrays])
    dtypes = (ctypes.c_char_p * count)(*[b"float32"] * count)
    fn = getattr(lib, name)
    fn.restype = ctypes.c_int
    status = fn(count, params, ndims, shapes, dtypes, None, None)
    if status != 0:
        raise RuntimeError(f"{name} returned {status}")
    return tuple(outs) if several else outs[0]


def apply_activation(y: np.ndarray, activation: str) -> np.ndarray:
    """The numpy twins' activation: "" (identity), "relu" or "relu6" of ``y``."""
    if activation in ("relu", "relu6"):
        y = np.maximum(y, 0.0)
    if activation == "relu6":
        y = np.minimum(y, 6.0)
    return y


def _padded(x: np.ndarray) -> np.ndarray:
    return np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))


def dw3x3_forward(x: np.ndarray, w: np.ndarray, stride: int, bias: np.ndarray | None = None,
                  activation: str = "") -> np.ndarray:
    """Numpy twin of the forward kernels: x (N, C, H, W), w (C, 1, 3, 3), bias (C,) -> (N, C, Ho, Wo) float32."""
    n, c, h, wd = x.shape
    ho, wo = out_hw(h, stride), out_hw(wd, stride)
    xp = _padded(x)
    k = np.asarray(w, np.float64).reshape(c, 3, 3)
    y = np.zeros((n, c, ho, wo), np.float64)
    for ki in range(3):
        for kj in range(3):
            patch = xp[:, :, ki:ki + stride * (ho - 1) + 1:stride, kj:kj + stride * (wo - 1) + 1:stride]
            y += patch * k[None, :, ki, kj, None, None]
    if bias is not None:
        y += np.asarray(bias, np.float64)[None, :, None, None]
    y = apply_activation(y, activation)
    return y.astype(np.float32)


def dw3x3_back_input(x_shape: tuple[int, ...], w: np.ndarray, dy: np.ndarray, stride: int) -> np.ndarray:
    """Numpy twin of ``CfDw3x3BackInputS*``: gradient of the forward w.r.t. x, (N, C, H, W) float32."""
    n, c, h, wd = x_shape
    ho, wo = dy.shape[2:]
    k = np.asarray(w, np.float64).reshape(c, 3, 3)
    dxp = np.zeros((n, c, h + 2, wd + 2), np.float64)
    g = np.asarray(dy, np.float64)
    for ki in range(3):
        for kj in range(3):
            dxp[:, :, ki:ki + stride * (ho - 1) + 1:stride, kj:kj + stride * (wo - 1) + 1:stride] += (
                g * k[None, :, ki, kj, None, None])
    return dxp[:, :, 1:h + 1, 1:wd + 1].astype(np.float32)


def dw3x3_back_weight(x: np.ndarray, dy: np.ndarray, stride: int) -> np.ndarray:
    """Numpy twin of ``CfDw3x3BackWeightS*``: gradient of the forward w.r.t. w, (C, 1, 3, 3) float32."""
    c = x.shape[1]
    ho, wo = dy.shape[2:]
    xp = _padded(x)
    g = np.asarray(dy, np.float64)
    dw = np.zeros((c, 3, 3), np.float64)
    for ki in range(3):
        for kj in range(3):
            patch = xp[:, :, ki:ki + stride * (ho - 1) + 1:stride, kj:kj + stride * (wo - 1) + 1:stride]
            dw[:, ki, kj] = (patch * g).sum(axis=(0, 2, 3))
    return dw.reshape(c, 1, 3, 3).astype(np.float32)
