"""Native dense 3×3 convolutions and 2×2 stride-2 transposed convolutions (``kernels/dense.cc``) as MindSpore AOT
custom operators for inference and training, and their numpy twins.

Besides the depthwise and 1×1 convolutions, three kinds of layers of the folded CenterFace network still ran on
MindSpore's own operators, each followed by a separate BiasAdd and ReLU pass: the first convolution (3 → 32
channels, 3×3, stride 2, on the full-size input), the neck's ``conv_last`` (3×3, stride 1) with the valid-region
mask before it, and the neck's three 2×2 stride-2 transposed convolutions. ``kernels/dense.cc`` runs each as GEMMs in
OpenBLAS (found like :mod:`centerface_flow.ops.pointwise`'s) with bias and activation fused in:

* ``CfConv3x3S{1,2}Bias{,Relu,Relu6}Valid(x (N, Cin, H, W), w (Cout, Cin, 3, 3), b (Cout,), region (4,))``:
  im2col of a band of output rows per thread + sgemm into the output; padding 1; with the valid-region semantics
  of the depthwise kernels (see :func:`centerface_flow.ops.native.depthwise_op`): input past the image inside a
  bottom/right zero-padded tensor counts as the convolution's zero padding, outputs outside the valid region are
  zero, so no mask is needed before it;
* ``CfConv3x3HeadsReluValid(x, w, b, region, w_hm, b_hm, w_wh, b_wh, w_off, b_off, w_lm, b_lm)``: the stride-1
  convolution + ReLU followed by CenterFace's four heads (the neck's ``conv_last`` and the heads in one call: the
  neck's output, 24 channels at a quarter of the input size, is never written to memory);
* ``CfUpSumRelu(x0 (N, C0, h, w), wt (C0, C, 2, 2), bt (C,), x1 (N, C1, 2h, 2w), wl (C, C1, 1, 1), bl (C,))``: an
  IDA-up node, relu(T x0 + bt) + relu(wl · x1 + bl) with T the transposed convolution below, on register tiles
  row by row (the upsampled map is never written);
* ``CfConvT2x2S2Bias{,Relu}(x (N, Cin, h, w), w (Cin, Cout, 2, 2), b (Cout,)) -> (N, Cout, 2h, 2w)``: one GEMM per
  band of input rows, scattered into the 2×2 output blocks (MindSpore's ``Conv2dTranspose`` weight layout).

These are inference-only (no gradient) and used by :func:`centerface_flow.fused.fold.fold_bn` where
:func:`available` says they can run; exports never use them.

For training, MindSpore runs the network's dense convolutions through oneDNN's im2col + GEMM: the neck's
``conv_last`` (3×3, 64 → 64 channels at a quarter of the input size in the model-zoo recipe) alone took about a
fifth of a training step on CPU (batch 8, 512×512: ~70 ms forward, ~140 ms for each gradient). Their training forms
(no bias, differentiable) are

* :func:`conv3x3_train_op` (the stem, stride 2, and ``conv_last``, stride 1): stride 1 forward ``CfConv3x3S1`` (the
  inference kernel, Winograd from 8 channels), input gradient ``CfConv3x3S1BackInput`` (the same convolution of the
  output gradient with the kernel turned around), weight gradient ``CfConv3x3S1BackWeight`` (one OpenBLAS GEMM per
  tap over zero-bordered planes); stride 2 ``CfConv3x3S2*`` on im2col bands and OpenBLAS (the stem's weight
  gradient: ~28 ms of a step in oneDNN, 10 ms here);
* :func:`convt2x2_train_op` (the neck's transposed convolutions): forward ``CfConvT2x2S2``, both gradients as one
  GEMM per band of input rows over dy's 2×2 output blocks gathered into a matrix (``CfConvT2x2S2BackInput``,
  ``CfConvT2x2S2BackWeight``).
"""
from __future__ import annotations

from functools import cache

import numpy as np

from centerface_flow.ops import native, pointwise

__all__ = ["available", "conv3x3_back_input", "conv3x3_back_weight", "conv3x3_forward", "conv3x3_heads_forward",
           "conv3x3_heads_op", "conv3x3_op", "conv3x3_train_op", "convt2x2_back_input", "convt2x2_back_weight",
           "convt2x2_forward", "convt2x2_op", "convt2x2_train_op", "upsum_forward", "upsum_op"]

#: Activations of the transposed-convolution kernels.
CONVT_ACTIVATIONS = ("", "relu")


def available() -> bool:
    """Whether the native dense kernels can run here (library built, OpenBLAS installed)."""
    return native.library_path() is not None and pointwise.available()


def _library():
    """The kernel library's path for an operator, or RuntimeError if the dense kernels cannot run here."""
    if not available():
        raise RuntimeError("native dense kernels unavailable (kernel library not built or scipy-openblas32 missing)")
    return native.library_path()


@cache
def conv3x3_op(stride: int, activation: str = ""):
    """``op(x (N, Cin, H, W), w (Cout, Cin, 3, 3), b (Cout,), region (4,)) -> (N, Cout, Ho, Wo)``,
    ``Ho = (H - 1) // stride + 1``: padding 1, bias, then ``activation`` ("", "relu", "relu6"), on the valid
    region given by ``region`` (``region[0] <= 0``: whole tensor). Inference only."""
    from mindspore import ops

    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride}")
    if activation not in native.ACTIVATIONS:
        raise ValueError(f"activation must be one of {native.ACTIVATIONS}, got {activation!r}")
    lib = _library()

    def out_shape(x, w, *_):
        return [x[0], w[0], native.out_hw(x[2], stride), native.out_hw(x[3], stride)]

    name = f"CfConv3x3S{stride}Bias{activation.capitalize()}Valid"
    return ops.Custom(f"{lib}:{name}", out_shape=out_shape, out_dtype=native.same_dtype,
                      func_type="aot")


@cache
def conv3x3_train_op(stride: int = 1):
    """``op(x (N, Cin, H, W), w (Cout, Cin, 3, 3)) -> (N, Cout, Ho, Wo)``, ``Ho = (H - 1) // stride + 1``: padding 1,
    no bias, differentiable (native input and weight gradients). The input gradient of a stride-2 convolution
    does not give back H and W (two sizes have the same Ho): it needs ``x``, so it is passed along."""
    from mindspore import ops

    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride}")
    lib = _library()
    back_weight = ops.Custom(f"{lib}:CfConv3x3S{stride}BackWeight", out_shape=lambda x, dy: [dy[1], x[1], 3, 3],
                             out_dtype=native.same_dtype, func_type="aot")
    if stride == 1:
        back_input = ops.Custom(f"{lib}:CfConv3x3S1BackInput", out_shape=lambda dy, w: [dy[0], w[1], dy[2], dy[3]],
                                out_dtype=native.same_dtype, func_type="aot")

        def bprop(x, w, out, dout):
            return back_input(dout, w), back_weight(x, dout)
    else:
        back_input_like = ops.Custom(f"{lib}:CfConv3x3S2BackInput", out_shape=lambda dy, w, x: list(x),
                                     out_dtype=native.same_dtype, func_type="aot")

        def bprop(x, w, out, dout):
            return back_input_like(dout, w, x), back_weight(x, dout)

    return ops.Custom(f"{lib}:CfConv3x3S{stride}",
                      out_shape=lambda x, w: [x[0], w[0], native.out_hw(x[2], stride), native.out_hw(x[3], stride)],
                      out_dtype=native.same_dtype, func_type="aot", bprop=bprop)


@cache
def convt2x2_train_op():
    """``op(x (N, Cin, h, w), w (Cin, Cout, 2, 2)) -> (N, Cout, 2h, 2w)``: the 2×2 stride-2 transposed convolution
    without bias (MindSpore's ``Conv2dTranspose`` layout), differentiable (native input and weight gradients)."""
    from mindspore import ops

    lib = _library()
    back_input = ops.Custom(f"{lib}:CfConvT2x2S2BackInput", out_shape=lambda dy, w: [dy[0], w[0], dy[2] // 2,
                                                                                    dy[3] // 2],
                            out_dtype=native.same_dtype, func_type="aot")
    back_weight = ops.Custom(f"{lib}:CfConvT2x2S2BackWeight", out_shape=lambda x, dy: [x[1], dy[1], 2, 2],
                             out_dtype=native.same_dtype, func_type="aot")

    def bprop(x, w, out, dout):
        return back_input(dout, w), back_weight(x, dout)

    return ops.Custom(f"{lib}:CfConvT2x2S2", out_shape=lambda x, w: [x[0], w[1], 2 * x[2], 2 * x[3]],
                      out_dtype=native.same_dtype, func_type="aot", bprop=bprop)


@cache
def conv3x3_heads_op():
    """``op(x (N, Cin, H, W), w (C, Cin, 3, 3), b (C,), region (4,), w_hm (1, C, 1, 1), b_hm (1,), w_wh (2, C, 1, 1),
    b_wh, w_off (2, C, 1, 1), b_off, w_lm (10, C, 1, 1), b_lm) -> (sigmoid(hm), wh, off, lm)``, each (N, rows, H, W):
    the stride-1 3×3 convolution + bias + ReLU of :func:`conv3x3_op` (on the valid region, zero outside) followed by
    CenterFace's four heads (:func:`centerface_flow.ops.pointwise.heads_op`), the convolution's outputs never written
    to memory. Inference only."""
    from mindspore import ops

    lib = _library()

    def out_shape(x, w, b, region, *heads):
        return tuple([x[0], hw[0], x[2], x[3]] for hw in heads[0::2])

    return ops.Custom(f"{lib}:CfConv3x3HeadsReluValid", out_shape=out_shape,
                      out_dtype=lambda x, *_: (x, x, x, x), func_type="aot")


@cache
def upsum_op():
    """``op(x0 (N, C0, h, w), wt (C0, C, 2, 2), bt (C,), x1 (N, C1, 2h, 2w), wl (C, C1, 1, 1), bl (C,)) ->
    relu(T x0 + bt) + relu(wl · x1 + bl)`` (N, C, 2h, 2w), T the 2×2 stride-2 transposed convolution: one IDA-up node
    of the neck (:func:`convt2x2_op` then :func:`centerface_flow.ops.pointwise.pointwise_op` with its residual) in one
    call, the upsampled map never written. Inference only."""
    from mindspore import ops

    lib = _library()

    def out_shape(x0, wt, *_):
        return [x0[0], wt[1], 2 * x0[2], 2 * x0[3]]

    return ops.Custom(f"{lib}:CfUpSumRelu", out_shape=out_shape, out_dtype=native.same_dtype,
                      func_type="aot")


@cache
def convt2x2_op(activation: str = ""):
    """``op(x (N, Cin, h, w), w (Cin, Cout, 2, 2), b (Cout,)) -> (N, Cout, 2h, 2w)``: the 2×2 stride-2 transposed
    convolution (no padding) + bias, then ``activation`` ("" or "relu"). Inference only."""
    from mindspore import ops

    if activation not in CONVT_ACTIVATIONS:
        raise ValueError(f"activation must be one of {CONVT_ACTIVATIONS}, got {activation!r}")
    lib = _library()

    def out_shape(x, w, *_):
        return [x[0], w[1], -1 if x[2] < 0 else 2 * x[2], -1 if x[3] < 0 else 2 * x[3]]

    return ops.Custom(f"{lib}:CfConvT2x2S2Bias{activation.capitalize()}", out_shape=out_shape,
                      out_dtype=native.same_dtype, func_type="aot")


# ---------------------------------------------------------------------------------------------------------------
# numpy twins (float64 inside, float32 out)



def _valid_input(region: np.ndarray | None, h: int, w: int) -> tuple[int, int]:
    """The valid (rows, cols) of an H × W layer input for ``region`` (as ``ValidPlane`` in ``kernels/cf_common.h``)."""
    if region is None or region[0] <= 0:
        return h, w
    big_h, big_w, img_h, img_w = (int(v) for v in region)
    rh, rw = big_h // h, big_w // w
    if rh < 1 or rw < 1 or rh * h != big_h or rw * w != big_w or not (1 <= img_h <= big_h and 1 <= img_w <= big_w):
        raise ValueError(f"region {list(region)} does not describe a ({h}, {w}) layer input")
    return min(-(-img_h // rh), h), min(-(-img_w // rw), w)


def conv3x3_forward(x: np.ndarray, w: np.ndarray, stride: int, bias: np.ndarray | None = None, activation: str = "",
                    region: np.ndarray | None = None) -> np.ndarray:
    """Numpy twin of ``CfConv3x3S*``: x (N, Cin, H, W), w (Cout, Cin, 3, 3), bias (Cout,) -> (N, Cout, Ho, Wo)
    float32, padding 1; with ``region`` only the valid part is computed from the valid input, the rest is zero."""
    n, _, h, wd = x.shape
    cout = w.shape[0]
    ho, wo = native.out_hw(h, stride), native.out_hw(wd, stride)
    vh, vw = _valid_input(region, h, wd)
    vho, vwo = native.out_hw(vh, stride), native.out_hw(vw, stride)
    xp = np.pad(np.asarray(x, np.float64)[:, :, :vh, :vw], ((0, 0), (0, 0), (1, 1), (1, 1)))
    k = np.asarray(w, np.float64)
    acc = np.zeros((n, cout, vho, vwo), np.float64)
    for ki in range(3):
        for kj in range(3):
            patch = xp[:, :, ki:ki + stride * (vho - 1) + 1:stride, kj:kj + stride * (vwo - 1) + 1:stride]
            acc += np.einsum("oc,ncij->noij", k[:, :, ki, kj], patch)
    if bias is not None:
        acc += np.asarray(bias, np.float64)[None, :, None, None]
    y = np.zeros((n, cout, ho, wo), np.float64)
    y[:, :, :vho, :vwo] = native.apply_activation(acc, activation)
    return y.astype(np.float32)


def conv3x3_back_weight(x: np.ndarray, dy: np.ndarray, stride: int = 1) -> np.ndarray:
    """Numpy twin of ``CfConv3x3S{1,2}BackWeight``: the gradient (Cout, Cin, 3, 3) of sum(dy * conv(x, w)) over w
    for the padding-1 convolution of that stride."""
    ho, wo = dy.shape[2:]
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    g = np.asarray(dy, np.float64)
    out = np.zeros((dy.shape[1], x.shape[1], 3, 3), np.float64)
    for ki in range(3):
        for kj in range(3):
            patch = xp[:, :, ki:ki + stride * (ho - 1) + 1:stride, kj:kj + stride * (wo - 1) + 1:stride]
            out[:, :, ki, kj] = np.einsum("noij,ncij->oc", g, patch)
    return out.astype(np.float32)


def conv3x3_back_input(dy: np.ndarray, w: np.ndarray, x_shape: tuple, stride: int = 1) -> np.ndarray:
    """Numpy twin of ``CfConv3x3S{1,2}BackInput``: the gradient (x_shape) of sum(dy * conv(x, w)) over x for the
    padding-1 convolution of that stride."""
    n, cin, h, wd = x_shape
    ho, wo = dy.shape[2:]
    dxp = np.zeros((n, cin, h + 2, wd + 2), np.float64)
    g, k = np.asarray(dy, np.float64), np.asarray(w, np.float64)
    for ki in range(3):
        for kj in range(3):
            dxp[:, :, ki:ki + stride * (ho - 1) + 1:stride, kj:kj + stride * (wo - 1) + 1:stride] += np.einsum(
                "oc,noij->ncij", k[:, :, ki, kj], g)
    return dxp[:, :, 1:h + 1, 1:wd + 1].astype(np.float32)


def conv3x3_heads_forward(x: np.ndarray, w: np.ndarray, bias: np.ndarray, region: np.ndarray | None,
                          heads: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """Numpy twin of ``CfConv3x3HeadsReluValid``: the heads (:func:`centerface_flow.ops.pointwise.heads_forward`) of
    the stride-1 convolution + ReLU (:func:`conv3x3_forward`)."""
    return pointwise.heads_forward(conv3x3_forward(x, w, 1, bias, "relu", region), heads)


def upsum_forward(x0: np.ndarray, wt: np.ndarray, bt: np.ndarray, x1: np.ndarray, wl: np.ndarray,
                  bl: np.ndarray) -> np.ndarray:
    """Numpy twin of ``CfUpSumRelu``: relu(T x0 + bt) + relu(wl · x1 + bl)."""
    up = convt2x2_forward(x0, wt, bt, "relu").astype(np.float64)
    return pointwise.pw_forward(x1, wl, bl, "relu", residual=up)


def convt2x2_back_input(dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Numpy twin of ``CfConvT2x2S2BackInput``: dx (N, Cin, h, w) from dy (N, Cout, 2h, 2w), w (Cin, Cout, 2, 2)."""
    g, k = np.asarray(dy, np.float64), np.asarray(w, np.float64)
    dx = sum(np.einsum("co,nohw->nchw", k[:, :, a, b], g[:, :, a::2, b::2]) for a in range(2) for b in range(2))
    return dx.astype(np.float32)


def convt2x2_back_weight(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Numpy twin of ``CfConvT2x2S2BackWeight``: dw (Cin, Cout, 2, 2) from x (N, Cin, h, w), dy (N, Cout, 2h, 2w)."""
    xd, g = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    dw = np.zeros((x.shape[1], dy.shape[1], 2, 2), np.float64)
    for a in range(2):
        for b in range(2):
            dw[:, :, a, b] = np.einsum("nchw,nohw->co", xd, g[:, :, a::2, b::2])
    return dw.astype(np.float32)


def convt2x2_forward(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, activation: str = "") -> np.ndarray:
    """Numpy twin of ``CfConvT2x2S2*``: x (N, Cin, h, w), w (Cin, Cout, 2, 2), bias (Cout,) -> (N, Cout, 2h, 2w)."""
    n, _, h, wd = x.shape
    cout = w.shape[1]
    y = np.zeros((n, cout, 2 * h, 2 * wd), np.float64)
    xd, k = np.asarray(x, np.float64), np.asarray(w, np.float64)
    for a in range(2):
        for b in range(2):
            y[:, :, a::2, b::2] = np.einsum("co,nchw->nohw", k[:, :, a, b], xd)
    if bias is not None:
        y += np.asarray(bias, np.float64)[None, :, None, None]
    return native.apply_activation(y, activation).astype(np.float32)
