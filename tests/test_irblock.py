"""The fused inverted-residual block kernel vs its numpy twin (the three layers one after the other), including
the valid region of a padded input, and as a MindSpore custom operator in graph and pynative mode."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from centerface_flow import runtime
from centerface_flow.export import relative_error as _rel
from centerface_flow.fused.program import as_panels, panel_rows
from centerface_flow.ops import irblock, native

TOL = 1e-5

pytestmark = pytest.mark.skipif(not irblock.available(),
                                reason="native block kernel unavailable (library not built or scipy-openblas32 missing)")

# (N, Cin, E, Cout, H, W, stride, activation, residual): 1-pixel and odd planes (rows that are not a multiple of the
# kernel's 16-pixel tiles), both strides, both activations, channel counts that are not multiples of its register
# tiles (6 or 12 outputs), two images (the threads' runs of rows cross from one image to the next)
CASES = [
    (1, 16, 96, 24, 37, 45, 2, "relu", False),
    (2, 24, 144, 24, 20, 17, 1, "relu6", True),
    (1, 3, 5, 7, 1, 1, 2, "relu", False),
    (1, 3, 6, 3, 1, 9, 1, "relu", True),
    (1, 8, 48, 16, 2, 3, 1, "relu6", False),
    (1, 32, 192, 32, 30, 80, 1, "relu", True),
    (2, 12, 30, 20, 9, 2, 2, "relu6", False),
    (1, 16, 96, 24, 120, 90, 2, "relu", False),  # many rows per thread: the ring of expanded rows wraps around
    (3, 13, 25, 13, 7, 33, 1, "relu6", True),
    (1, 8, 24, 23, 5, 19, 1, "relu", False),  # short last panels of every height: 23 = 12 + 11 = 3 x 6 + 5
    (1, 5, 10, 7, 6, 9, 1, "relu6", False),  # fewer expanded channels than a panel: a thread with none of them
]


@pytest.fixture(params=["rows", "whole", "unparsed"])
def mode(request, monkeypatch):
    """Both ways the kernel computes a block: row by row, or (small images) whole, channels and then pixels split
    between threads. The kernel reads CENTERFACE_BLOCK_WHOLE_KB (largest expanded image
    computed whole) on every call; a value that is not an integer means the default."""
    value = {"rows": "0", "whole": "1000000", "unparsed": "3MB"}[request.param]
    monkeypatch.setenv("CENTERFACE_BLOCK_WHOLE_KB", value)
    return request.param


def _data(case, seed):
    n, cin, e, cout, h, w = case[:6]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
    params = [rng.standard_normal((e, cin, 1, 1)) * 0.3, rng.standard_normal(e), rng.standard_normal((e, 1, 3, 3)) * 0.3,
              rng.standard_normal(e), rng.standard_normal((cout, e, 1, 1)) * 0.1, rng.standard_normal(cout)]
    return x, [p.astype(np.float32) for p in params]


def _name(stride, activation, residual):
    return f"CfIrS{stride}{activation.capitalize()}{'Res' if residual else ''}"


def test_kernel_matches_numpy_twin(mode):
    for i, case in enumerate(CASES):
        x, params = _data(case, i)
        stride, act, res = case[6:]
        ref = irblock.block_forward(x, *params, stride, act, res)
        out = native.call_kernel(_name(stride, act, res), [x, *params, np.zeros(4, np.float32)], ref.shape)
        assert _rel(out, ref) <= TOL, case


def test_block_without_expansion(mode):
    for i, case in enumerate(CASES[:3]):
        x, params = _data(case, 30 + i)
        stride, act = case[6:8]
        rng = np.random.default_rng(i)
        cin = x.shape[1]
        wd, bd = rng.standard_normal((cin, 1, 3, 3)).astype(np.float32), rng.standard_normal(cin).astype(np.float32)
        wp = rng.standard_normal((params[4].shape[0], cin, 1, 1)).astype(np.float32)
        x = np.maximum(x, 0)  # the input of such a block is already activated
        ref = irblock.block_forward(x, None, None, wd, bd, wp, params[5], stride, act, False)
        out = native.call_kernel(f"CfIrDwS{stride}{act.capitalize()}", [x, wd, bd, wp, params[5],
                                                                          np.zeros(4, np.float32)],
                                 ref.shape)
        assert _rel(out, ref) <= TOL, case
        if x.shape[2] > 4 and x.shape[3] > 4:
            h, w = x.shape[2:]
            ref = irblock.block_forward(np.ascontiguousarray(x[:, :, :h - 3, :w - 2]), None, None, wd, bd, wp,
                                        params[5], stride, act, False)
            out = native.call_kernel(f"CfIrDwS{stride}{act.capitalize()}",
                                     [x, wd, bd, wp, params[5], native.valid_region((h, w), (h - 3, w - 2))],
                                     out.shape)
            assert _rel(out[:, :, :ref.shape[2], :ref.shape[3]], ref) <= TOL, case


def test_valid_region_equals_unpadded_image(mode):
    """Input zero-padded at the bottom / right (garbage would do too: the kernel ignores it): the valid part of the
    output equals the block run on the image alone."""
    for i, case in enumerate(c for c in CASES if c[4] > 4 and c[5] > 4):
        x, params = _data(case, 10 + i)
        stride, act, res = case[6:]
        h, w = x.shape[2:]
        h0, w0 = h - 3, w - 2
        ref = irblock.block_forward(np.ascontiguousarray(x[:, :, :h0, :w0]), *params, stride, act, res)
        padded = x.copy()
        padded[:, :, h0:, :] = 7.0
        padded[:, :, :, w0:] = -3.0
        out_shape = (x.shape[0], params[4].shape[0], (h - 1) // stride + 1, (w - 1) // stride + 1)
        out = native.call_kernel(_name(stride, act, False), [padded, *params, native.valid_region((h, w), (h0, w0))],
                                 out_shape)
        vh, vw = ref.shape[2:]
        valid = out[:, :, :vh, :vw] + (padded[:, :, :vh, :vw] if res else 0)
        assert _rel(valid, ref) <= TOL, case


def test_weights_given_as_panels(mode):
    """The 1x1 weights packed once as the tiles' panels (what the one-operator network passes) give exactly the
    output of the same weights in MindSpore's layout, which the kernel packs itself; for the stem block too."""
    for i, case in enumerate(CASES):
        x, params = _data(case, i)
        stride, act, res = case[6:]
        name = _name(stride, act, res)
        rows = panel_rows(name, 1)
        assert rows in (6, 12) and panel_rows(name, 5) == rows and panel_rows(name, 3) == 0
        packed = [as_panels(params[0], rows), *params[1:4], as_panels(params[4], rows), params[5]]
        region = np.zeros(4, np.float32)
        plain = native.call_kernel(name, [x, *params, region], (x.shape[0], case[3], *_out_hw(case)))
        assert np.array_equal(native.call_kernel(name, [x, *packed, region], plain.shape), plain), case
    x, params = _stem_data(STEM_CASES[0], 0)
    region = np.zeros(4, np.float32)
    out_shape = (1, 16, 19, 23)
    plain = native.call_kernel("CfStemIrDwRelu", [x, *params, region], out_shape)
    packed = [*params[:4], as_panels(params[4], panel_rows("CfStemIrDwRelu", 5)), params[5]]
    assert np.array_equal(native.call_kernel("CfStemIrDwRelu", [x, *packed, region], out_shape), plain)


def _out_hw(case):
    h, w, stride = case[4], case[5], case[6]
    return (h - 1) // stride + 1, (w - 1) // stride + 1


def test_bad_arguments_are_refused():
    x, params = _data(CASES[0], 0)
    with pytest.raises(RuntimeError, match="returned 1"):  # panels of another height than this CPU's tiles
        rows = 18 - panel_rows("CfIrS2Relu", 1)
        native.call_kernel("CfIrS2Relu", [x, as_panels(params[0], rows), *params[1:], np.zeros(4, np.float32)],
                           (1, 24, 19, 23))
    with pytest.raises(RuntimeError, match="returned 1"):  # a weight of the wrong size
        native.call_kernel("CfIrS2Relu", [x, params[0][:-1], *params[1:], np.zeros(4, np.float32)], (1, 24, 19, 23))
    with pytest.raises(RuntimeError, match="returned 1"):  # residual needs stride 1 and Cin == Cout
        native.call_kernel("CfIrS1ReluRes", [x, *params, np.zeros(4, np.float32)], (1, 24, 37, 45))
    with pytest.raises(RuntimeError, match="returned 1"):  # wrong output shape
        native.call_kernel("CfIrS2Relu", [x, *params, np.zeros(4, np.float32)], (1, 24, 18, 23))


# (N, Cin, C, Cout, H, W): the network's stem (3 -> 32 -> 16), odd and 1-pixel sizes, channel counts that are not
# multiples of the kernel's register blocks (8 stem channels, 16 projection channels)
STEM_CASES = [(1, 3, 32, 16, 37, 45), (2, 3, 32, 16, 20, 17), (1, 3, 8, 5, 1, 1), (1, 2, 13, 7, 9, 30),
              (1, 3, 32, 16, 70, 90), (1, 3, 16, 32, 33, 64)]


def _stem_data(case, seed):
    n, cin, c, cout, h, w = case
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, cin, h, w)).astype(np.float32)  # raw pixels, like the released model's input
    params = [rng.standard_normal((c, cin, 3, 3)) * 0.02, rng.standard_normal(c), rng.standard_normal((c, 1, 3, 3)),
              rng.standard_normal(c), rng.standard_normal((cout, c, 1, 1)) * 0.3, rng.standard_normal(cout)]
    return x, [p.astype(np.float32) for p in params]


@pytest.mark.parametrize("act", ["relu", "relu6"])
def test_stem_block_kernel_matches_numpy_twin(act):
    for i, case in enumerate(STEM_CASES):
        x, params = _stem_data(case, i)
        ref = irblock.stem_block_forward(x, *params, act)
        out = native.call_kernel(f"CfStemIrDw{act.capitalize()}", [x, *params, np.zeros(4, np.float32)], ref.shape)
        assert _rel(out, ref) <= TOL, case
    if act == "relu6":  # the stem's pre-activations must reach past the clipping point
        from centerface_flow.ops import dense

        assert (dense.conv3x3_forward(x, params[0], 2, params[1]) > 6.0).any()


def test_stem_block_valid_region_equals_unpadded_image():
    for i, case in enumerate(c for c in STEM_CASES if c[4] > 8 and c[5] > 8):
        x, params = _stem_data(case, 20 + i)
        h, w = x.shape[2:]
        h0, w0 = h - 5, w - 6
        ref = irblock.stem_block_forward(np.ascontiguousarray(x[:, :, :h0, :w0]), *params, "relu")
        padded = x.copy()
        padded[:, :, h0:, :] = 300.0  # the kernel must not read past the image
        padded[:, :, :, w0:] = -50.0
        out = native.call_kernel("CfStemIrDwRelu", [padded, *params, native.valid_region((h, w), (h0, w0))],
                                 (x.shape[0], params[4].shape[0], (h - 1) // 2 + 1, (w - 1) // 2 + 1))
        assert _rel(out[:, :, :ref.shape[2], :ref.shape[3]], ref) <= TOL, case


@pytest.mark.parametrize("tiles", ["wide", "narrow"])
def test_register_tiles_of_both_widths(tiles):
    """The kernels' register tiles follow the CPU (16-float vectors with AVX-512, 8-float with AVX2), chosen once
    per process; CENTERFACE_TILES forces either, so both are checked on any CPU (in a child process)."""
    env = {**os.environ, "CENTERFACE_TILES": tiles}
    tests = ("kernel_matches_numpy_twin or block_without_expansion or valid_region_equals_unpadded_image or "
             "weights_given_as_panels or "
             "stem_block_valid_region_equals_unpadded_image")
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", tests],
                         env=env, capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "15 passed" in res.stdout, res.stdout[-2000:]


def test_stem_block_bad_arguments_are_refused():
    x, params = _stem_data(STEM_CASES[0], 0)
    region = np.zeros(4, np.float32)
    with pytest.raises(RuntimeError, match="returned 1"):  # wrong output shape
        native.call_kernel("CfStemIrDwRelu", [x, *params, region], (1, 16, 19, 22))
    with pytest.raises(RuntimeError, match="returned 1"):  # stem weight for 4 input channels
        native.call_kernel("CfStemIrDwRelu", [x, np.zeros((32, 4, 3, 3), np.float32), *params[1:], region],
                           (1, 16, 19, 23))
    with pytest.raises(RuntimeError, match="returned 1"):  # a region that does not fit the input
        native.call_kernel("CfStemIrDwRelu", [x, *params, np.array([30, 40, 20, 20], np.float32)], (1, 16, 19, 23))
    runtime.mindspore("pynative")
    with pytest.raises(ValueError, match="unsupported stem block"):
        irblock.stem_block_op("tanh")


def test_unsupported_blocks_are_refused():
    runtime.mindspore("pynative")
    for args in ((3, "relu", False), (1, "tanh", False), (2, "relu", True), (1, "relu", True, False)):
        with pytest.raises(ValueError, match="unsupported block"):
            irblock.block_op(*args)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_custom_op(mode):
    ms = runtime.mindspore(mode)
    try:
        for i, case in enumerate(CASES[:3]):
            x, params = _data(case, 20 + i)
            stride, act, res = case[6:]
            op = irblock.block_op(stride, act, res)
            out = op(ms.Tensor(x), *(ms.Tensor(p) for p in params), ms.Tensor(np.zeros(4, np.float32))).asnumpy()
            assert _rel(out, irblock.block_forward(x, *params, stride, act, res)) <= TOL, case
        for i, case in enumerate(STEM_CASES[:2]):
            x, params = _stem_data(case, 40 + i)
            out = irblock.stem_block_op("relu6")(ms.Tensor(x), *(ms.Tensor(p) for p in params),
                                                 ms.Tensor(np.zeros(4, np.float32))).asnumpy()
            assert _rel(out, irblock.stem_block_forward(x, *params, "relu6")) <= TOL, case
    finally:
        runtime.mindspore("pynative")
