"""Native 1×1 convolutions (``kernels/pointwise.cc``) as MindSpore AOT custom operators, and their numpy twins.

MobileNetV2's 1×1 convolutions carry most of its arithmetic. On MindSpore's CPU backend they go to oneDNN in plain
NCHW, which reorders every input and output into a blocked layout and back on each call; in NCHW a 1×1 convolution
of one image is simply ``Y (Cout × HW) = W (Cout × Cin) · X (Cin × HW)``, so ``kernels/pointwise.cc`` runs it as a
GEMM in OpenBLAS (the ``scipy-openblas32`` wheel, a package dependency, loaded by the kernel library at run time from
the path this module puts in ``CENTERFACE_OPENBLAS_LIB``) and applies the inference epilogue (bias, ReLU / ReLU6,
residual add) in the same pass. Training gets a forward op with a ``bprop`` made of the two backward GEMMs.

The operators are used where :func:`centerface_flow.ops.native.enabled` says native kernels are on *and*
:func:`available` (the kernel library was built and OpenBLAS is importable); otherwise the network keeps
``nn.Conv2d``. Exports never use them (see :mod:`centerface_flow.ops.native`).
"""
from __future__ import annotations

import logging
import os
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from centerface_flow.ops import native

__all__ = [
    "BLAS_ENV",
    "available",
    "heads_forward",
    "heads_op",
    "openblas_path",
    "pointwise_op",
    "pw_back_input",
    "pw_back_weight",
    "pw_forward",
    "use_pointwise",
]

log = logging.getLogger(__name__)

#: Environment variable through which the kernel library finds OpenBLAS (set here, read by the C++ code).
BLAS_ENV = "CENTERFACE_OPENBLAS_LIB"


@lru_cache(maxsize=1)
def openblas_path() -> Path | None:
    """The OpenBLAS shared library of the installed ``scipy-openblas32`` wheel, or None when it is missing."""
    try:
        import scipy_openblas32
    except ImportError:
        return None
    path = Path(scipy_openblas32.get_lib_dir()) / f"lib{scipy_openblas32.get_library()}.so"
    return path if path.is_file() else None


def available() -> bool:
    """Whether the native 1×1 kernels can run here (library built, OpenBLAS installed); sets ``BLAS_ENV``."""
    blas = openblas_path()
    if native.library_path() is None or blas is None:
        return False
    os.environ.setdefault(BLAS_ENV, str(blas))
    return True


def use_pointwise() -> bool:
    """Whether networks built now run their 1×1 convolutions natively (native kernels enabled and available)."""
    if not native.enabled():
        return False
    if not available():
        log.info("native 1x1 kernels unavailable (library not built or scipy-openblas32 missing); "
                 "using MindSpore's convolution for them")
        return False
    return True


@cache
def pointwise_op(bias: bool = False, activation: str = "", residual: bool = False):
    """The 1×1 convolution as a MindSpore primitive.

    ``op(x (N, Cin, H, W), w (Cout, Cin, 1, 1)) -> (N, Cout, H, W)``, differentiable (native backward GEMMs).
    With ``bias=True``: ``op(x, w, b (Cout,))`` then ``activation`` ("", "relu", "relu6"), and with ``residual``
    ``op(x, w, b, r (N, Cout, H, W))`` adds ``r`` after the activation; inference only (no gradient).
    """
    from mindspore import ops

    if activation not in native.ACTIVATIONS or ((activation or residual) and not bias):
        raise ValueError(f"activation must be one of {native.ACTIVATIONS}; activation/residual need bias=True")
    if not available():
        raise RuntimeError("native 1x1 kernels unavailable (kernel library not built or scipy-openblas32 missing)")
    lib = native.library_path()

    def out_shape(x, w, *_):
        return [x[0], w[0], x[2], x[3]]

    if bias:
        name = f"CfPwBias{activation.capitalize()}{'Res' if residual else ''}"
        return ops.Custom(f"{lib}:{name}", out_shape=out_shape, out_dtype=native.same_dtype, func_type="aot")
    back_input = ops.Custom(f"{lib}:CfPwBackInput", out_shape=lambda x, w, dy: list(x), out_dtype=native.same_dtype,
                            func_type="aot")
    back_weight = ops.Custom(f"{lib}:CfPwBackWeight", out_shape=lambda x, dy: [dy[1], x[1], 1, 1],
                             out_dtype=native.same_dtype, func_type="aot")

    def bprop(x, w, out, dout):
        return back_input(x, w, dout), back_weight(x, dout)

    return ops.Custom(f"{lib}:CfPw", out_shape=out_shape, out_dtype=native.same_dtype, func_type="aot", bprop=bprop)


@cache
def heads_op():
    """CenterFace's four heads in one kernel call: ``op(x (N, C, H, W), w_hm (1, C, 1, 1), b_hm (1,), w_wh (2, C,
    1, 1), b_wh, w_off (2, C, 1, 1), b_off, w_lm (10, C, 1, 1), b_lm) -> (sigmoid(hm), wh, off, lm)``, each
    (N, rows, H, W). Inference only."""
    from mindspore import ops

    if not available():
        raise RuntimeError("native 1x1 kernels unavailable (kernel library not built or scipy-openblas32 missing)")

    def out_shape(x, *weights):
        return tuple([x[0], w[0], x[2], x[3]] for w in weights[0::2])

    return ops.Custom(f"{native.library_path()}:CfHeads", out_shape=out_shape,
                      out_dtype=lambda x, *_: (x, x, x, x), func_type="aot")


# ---------------------------------------------------------------------------------------------------------------
# numpy twins (float64 inside, float32 out)


def pw_forward(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, activation: str = "",
               residual: np.ndarray | None = None) -> np.ndarray:
    """x (N, Cin, H, W), w (Cout, Cin, 1, 1), bias (Cout,), residual (N, Cout, H, W) -> (N, Cout, H, W) float32."""
    n, cin, h, wd = x.shape
    k = np.asarray(w, np.float64).reshape(-1, cin)
    y = np.einsum("oc,ncp->nop", k, np.asarray(x, np.float64).reshape(n, cin, h * wd)).reshape(n, -1, h, wd)
    if bias is not None:
        y += np.asarray(bias, np.float64)[None, :, None, None]
    y = native.apply_activation(y, activation)
    if residual is not None:
        y += residual
    return y.astype(np.float32)


def pw_back_input(w: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Gradient of :func:`pw_forward` (no bias) w.r.t. x: w (Cout, Cin, 1, 1), dy (N, Cout, H, W) -> (N, Cin, H, W)."""
    n, cout, h, wd = dy.shape
    k = np.asarray(w, np.float64).reshape(cout, -1)
    dx = np.einsum("oc,nop->ncp", k, np.asarray(dy, np.float64).reshape(n, cout, h * wd))
    return dx.reshape(n, -1, h, wd).astype(np.float32)


def pw_back_weight(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Gradient of :func:`pw_forward` (no bias) w.r.t. w: x (N, Cin, H, W), dy (N, Cout, H, W) -> (Cout, Cin, 1, 1)."""
    n, cin, h, wd = x.shape
    cout = dy.shape[1]
    dw = np.einsum("nop,ncp->oc", np.asarray(dy, np.float64).reshape(n, cout, h * wd),
                   np.asarray(x, np.float64).reshape(n, cin, h * wd))
    return dw.reshape(cout, cin, 1, 1).astype(np.float32)


def heads_forward(x: np.ndarray, heads: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """Numpy twin of :func:`heads_op`: ``heads`` = [(w, b)] * 4; the first output goes through a sigmoid."""
    outs = [pw_forward(x, w, b).astype(np.float64) for w, b in heads]
    outs[0] = 1.0 / (1.0 + np.exp(-outs[0]))
    return [o.astype(np.float32) for o in outs]
