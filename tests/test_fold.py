"""BatchNorm folding: the folding formula, and folded networks equal to the originals (≤ 1e-4 relative) with and
without the native kernels, in graph mode, including a network that already ran before it was folded."""
from __future__ import annotations

import numpy as np
import pytest

from centerface_flow import runtime
from centerface_flow.export import relative_error as _rel
from centerface_flow.fused.fold import REGION_NAME, fold_pair
from centerface_flow.ops import native

TOL = 1e-4


def _bn(y, gamma, beta, mean, var, eps):
    shape = (1, -1, 1, 1)
    return (y - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * gamma.reshape(shape) + beta.reshape(shape)


def test_fold_pair_1x1_conv_and_transposed():
    rng = np.random.default_rng(0)
    cin, cout, eps = 5, 4, 1e-3
    x = rng.standard_normal((2, cin, 3, 3))
    gamma, beta = rng.uniform(0.5, 2, cout), rng.standard_normal(cout)
    mean, var = rng.standard_normal(cout), rng.uniform(0.1, 2, cout)
    # 1x1 conv, weight (out, in, 1, 1), with a bias of its own
    w, b = rng.standard_normal((cout, cin, 1, 1)), rng.standard_normal(cout)
    y = np.einsum("oi,nihw->nohw", w[:, :, 0, 0], x) + b[None, :, None, None]
    fw, fb = fold_pair(w, b, gamma, beta, mean, var, eps)
    folded = np.einsum("oi,nihw->nohw", fw[:, :, 0, 0], x) + fb[None, :, None, None]
    assert _rel(folded, _bn(y, gamma, beta, mean, var, eps)) <= 1e-6
    # 2x2 stride-2 transposed conv, weight (in, out, 2, 2) as in MindSpore: output channels on axis 1
    wt = rng.standard_normal((cin, cout, 2, 2))

    def deconv(weight):
        out = np.zeros((2, cout, 6, 6))
        for a in range(2):
            for c in range(2):
                out[:, :, a::2, c::2] = np.einsum("io,nihw->nohw", weight[:, :, a, c], x)
        return out

    fw, fb = fold_pair(wt, None, gamma, beta, mean, var, eps, transposed=True)
    folded = deconv(fw.astype(np.float64)) + fb[None, :, None, None]
    assert _rel(folded, _bn(deconv(wt), gamma, beta, mean, var, eps)) <= 1e-6


def _random_bn(net, seed):
    import mindspore as ms
    from mindspore import nn

    rng = np.random.default_rng(seed)
    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.BatchNorm2d):
            n = cell.gamma.shape[0]
            for param, values in ((cell.gamma, rng.uniform(0.5, 1.5, n)), (cell.beta, rng.normal(0, 0.2, n)),
                                  (cell.moving_mean, rng.normal(0, 0.2, n)),
                                  (cell.moving_variance, rng.uniform(0.5, 1.5, n))):
                param.set_data(ms.Tensor(values.astype(np.float32)))


@pytest.mark.slow
@pytest.mark.parametrize("use_native", [True, False])
@pytest.mark.parametrize(("head_width", "activation"), [(24, "relu"), (64, "relu6")])
def test_folded_network_equals_original(use_native, head_width, activation):
    if use_native and native.library_path() is None:
        pytest.skip("native kernel library not built")
    ms = runtime.mindspore("graph")
    from mindspore import nn

    from centerface_flow.fused.cells import FusedBlock, FusedDepthwiseConv3x3, FusedStemBlock
    from centerface_flow.fused.fold import fold_bn, folded_parameters
    from centerface_flow.nets.centerface import CenterFace
    from centerface_flow.ops import dense

    try:
        with native.use_native(use_native):
            net = CenterFace(head_width, activation, init_seed=5)
        _random_bn(net, 1)
        net.set_train(False)
        x = ms.Tensor(np.random.default_rng(2).uniform(-1, 1, (1, 3, 96, 128)).astype(np.float32))
        reference = [o.asnumpy() for o in net(x)]  # compiled unfolded first: folding must force a new graph
        expected_params = folded_parameters(net)
        fold_bn(net, use_native=use_native)
        cells = [c for _, c in net.cells_and_names()]
        assert not any(isinstance(c, nn.BatchNorm2d) for c in cells)
        # with native kernels every depthwise conv ends up in a native cell (most inside fused blocks)
        assert any(isinstance(c, (FusedDepthwiseConv3x3, FusedBlock)) for c in cells) == use_native
        # the stem and the first block (no expansion) run as one kernel
        assert sum(isinstance(c, FusedStemBlock) for c in cells) == int(use_native and dense.available())
        assert not any(isinstance(c, nn.Conv2d) and c.group > 1 for c in cells) or not use_native
        params = {p.name: p.asnumpy() for p in net.get_parameters() if p.name != REGION_NAME}
        assert set(params) == set(expected_params)
        assert not any(name.endswith(("gamma", "beta", "moving_mean", "moving_variance")) for name in params)
        for name, value in expected_params.items():
            np.testing.assert_allclose(params[name], value, rtol=1e-6, atol=1e-7)
        outputs = [o.asnumpy() for o in net(x)]
        for out, ref in zip(outputs, reference):
            assert out.shape == ref.shape
            assert _rel(out, ref) <= TOL
    finally:
        runtime.mindspore("pynative")


@pytest.mark.slow
def test_padded_runner_equals_unpadded(tmp_path):
    """The MindSpore runner pads inputs to buckets (one compiled graph for several sizes) and crops the outputs;
    they equal the unpadded run's (float32 rounding only), with and without padding actually needed."""
    if native.library_path() is None:
        pytest.skip("native kernel library not built")
    runtime.mindspore("graph")
    from centerface_flow.checkpoint import ModelMeta, save_checkpoint
    from centerface_flow.errors import UserError
    from centerface_flow.inference.backends import make_runner
    from centerface_flow.nets.centerface import CenterFace

    try:
        net = CenterFace(24, "relu", init_seed=0)
        _random_bn(net, 4)
        ckpt = tmp_path / "random.ckpt"
        save_checkpoint(ckpt, net, ModelMeta.released())
        exact, padded = make_runner(ckpt, "mindspore"), make_runner(ckpt, "mindspore", pad_multiple=128)
        assert "padded to multiples of 128" in padded.description
        rng = np.random.default_rng(0)
        for h, w in [(96, 160), (128, 128), (64, 224)]:
            x = rng.uniform(0, 255, (1, 3, h, w)).astype(np.float32)
            for out, ref in zip(padded(x), exact(x)):
                assert out.shape == ref.shape == (1, out.shape[1], h // 4, w // 4)
                assert _rel(out, ref) <= 1e-5
        with pytest.raises(UserError, match="multiple of 32"):
            make_runner(ckpt, "mindspore", pad_multiple=100)
    finally:
        runtime.mindspore("pynative")
