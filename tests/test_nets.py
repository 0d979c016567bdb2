"""The CenterFace network: output shapes in both MindSpore modes, model-zoo parameter names, initialisation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from centerface_flow import runtime


@pytest.fixture(scope="module")
def ms():
    return runtime.mindspore("pynative")


def _params(net) -> dict[str, np.ndarray]:
    return {p.name: p.asnumpy() for p in net.get_parameters()}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_output_shapes_both_modes(mode):
    ms = runtime.mindspore(mode)
    from centerface_flow.nets.centerface import CenterFace

    try:
        net = CenterFace(head_width=24, activation="relu")
        net.set_train(False)
        x = ms.Tensor(np.random.default_rng(0).uniform(0, 255, (2, 3, 64, 96)).astype(np.float32))
        hm, wh, off, kps = net(x)
        assert hm.shape == (2, 1, 16, 24)
        assert wh.shape == (2, 2, 16, 24)
        assert off.shape == (2, 2, 16, 24)
        assert kps.shape == (2, 10, 16, 24)
        hm = hm.asnumpy()
        assert np.all((hm >= 0) & (hm <= 1))
        assert all(np.isfinite(o.asnumpy()).all() for o in (wh, off, kps))
        # a second call (same compiled graph) gives the same outputs; CenterFace skips re-setting an unchanged
        # compile phase on its sub-cells, so they must all still carry the network's phase
        again = net(x)
        assert np.array_equal(again[0].asnumpy(), hm)
        phases = {cell.compile_phase for _, cell in net.cells_and_names()}
        assert phases == {net.compile_phase}
        if mode == "graph":
            assert net.compile_phase  # set by MindSpore's compile
            net.compile_phase = "other"
            assert {cell.compile_phase for _, cell in net.cells_and_names()} == {"other"}
    finally:
        runtime.mindspore("pynative")


def test_parameter_names_match_model_zoo(ms):
    from centerface_flow.nets.centerface import CenterFace

    names = {p.name: tuple(p.shape) for p in CenterFace(head_width=64, activation="relu6").get_parameters()}
    expected = {
        "base.need_fp1.0.features.0.weight": (32, 3, 3, 3),
        "base.need_fp1.0.features.1.gamma": (32,),
        "base.need_fp1.1.conv.0.features.0.weight": (32, 1, 3, 3),
        "base.need_fp1.1.conv.1.weight": (16, 32, 1, 1),
        "base.need_fp1.1.conv.2.moving_variance": (16,),
        "base.need_fp1.3.conv.3.beta": (24,),
        "base.need_fp2.0.conv.1.features.0.weight": (144, 1, 3, 3),
        "base.need_fp3.6.conv.2.weight": (96, 576, 1, 1),
        "base.need_fp4.3.conv.2.weight": (320, 960, 1, 1),
        "dla_up.conv.0.weight": (64, 320, 1, 1),
        "dla_up.up1.up.0.weight": (64, 64, 2, 2),
        "dla_up.up1.conv.0.weight": (64, 96, 1, 1),
        "dla_up.up3.conv.0.weight": (64, 24, 1, 1),
        "dla_up.conv_last.0.weight": (64, 64, 3, 3),
        "dla_up.conv_last.1.moving_mean": (64,),
        "hm_head.0.weight": (1, 64, 1, 1),
        "wh_head.bias": (2,),
        "off_head.weight": (2, 64, 1, 1),
        "kps_head.weight": (10, 64, 1, 1),
    }
    for name, shape in expected.items():
        assert names.get(name) == shape, name
    # 51 backbone convs, 5 neck convs + 3 transposed convs, 4 heads (weights + biases), 51 + 8 BatchNorms x 4
    assert sum(1 for n in names if n.endswith(".weight")) == 51 + 8 + 4
    assert sum(1 for n in names if n.endswith(".gamma")) == 51 + 8
    assert len(names) == 63 + 4 + 59 * 4
    assert "base.need_fp5.0.features.0.weight" not in names


def test_batchnorm_settings_follow_model_zoo(ms):
    from mindspore import nn

    from centerface_flow.nets.centerface import CenterFace

    net = CenterFace()
    bns = {name: cell for name, cell in net.cells_and_names() if isinstance(cell, nn.BatchNorm2d)}
    for name, cell in bns.items():
        ms_momentum = 1.0 - cell.momentum  # MindSpore stores 1 - momentum
        if name.startswith("base."):
            expected = (1e-5, 0.9)
        elif name == "dla_up.conv_last.1":
            expected = (1e-5, 0.99)
        else:
            expected = (1e-3, 0.9)
        assert cell.eps == pytest.approx(expected[0]), name
        assert ms_momentum == pytest.approx(expected[1]), name


def test_activation_is_configurable(ms):
    from mindspore import nn

    from centerface_flow.nets.centerface import CenterFace

    def kinds(net):
        acts = (nn.ReLU, nn.ReLU6)
        return {type(c) for n, c in net.cells_and_names() if n.startswith("base.") and isinstance(c, acts)}

    assert kinds(CenterFace(activation="relu")) == {nn.ReLU}
    assert kinds(CenterFace(activation="relu6")) == {nn.ReLU6}
    with pytest.raises(ValueError, match="relu"):
        CenterFace(activation="gelu")


def test_initialisation_matches_model_zoo(ms):
    from centerface_flow.nets.centerface import CenterFace

    params = _params(CenterFace(head_width=64, activation="relu6", init_seed=3))
    for head in ("hm_head.0", "wh_head", "off_head", "kps_head"):
        assert np.std(params[f"{head}.weight"]) == pytest.approx(0.001, rel=0.35)
        assert not params[f"{head}.bias"].any()
    # Kaiming normal, fan-out: a 1x1 conv with 960 outputs has std sqrt(2/960)
    weight = params["base.need_fp4.2.conv.0.features.0.weight"]
    assert weight.shape == (960, 160, 1, 1)
    assert np.std(weight) == pytest.approx(math.sqrt(2 / 960), rel=0.03)
    # transposed conv: uniform with bound 1/sqrt(in * kh * kw)
    up = params["dla_up.up2.up.0.weight"]
    bound = 1 / math.sqrt(64 * 4)
    assert np.abs(up).max() <= bound
    assert np.abs(up).max() > 0.95 * bound
    assert np.std(up) == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert np.all(params["dla_up.conv_last.1.gamma"] == 1) and not params["dla_up.conv_last.1.beta"].any()
    # seeded: same seed same weights, other seed other weights
    again = _params(CenterFace(head_width=64, activation="relu6", init_seed=3))
    other = _params(CenterFace(head_width=64, activation="relu6", init_seed=4))
    assert np.array_equal(params["dla_up.conv.0.weight"], again["dla_up.conv.0.weight"])
    assert not np.array_equal(params["dla_up.conv.0.weight"], other["dla_up.conv.0.weight"])
