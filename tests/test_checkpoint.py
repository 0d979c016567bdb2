"""Checkpoints carry their ModelMeta; model-zoo checkpoints without it load with stated defaults."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from centerface_flow import runtime
from centerface_flow.checkpoint import ModelMeta
from centerface_flow.errors import UserError


@pytest.fixture(scope="module")
def ms():
    return runtime.mindspore("pynative")


def test_meta_json_round_trip_and_validation():
    meta = ModelMeta.released(source="x")
    assert ModelMeta.from_json(meta.to_json()) == meta
    assert ModelMeta.model_zoo().input_format == "bgr_meanstd"
    with pytest.raises(ValueError, match="input_format"):
        ModelMeta(input_format="yuv")
    with pytest.raises(ValueError, match="landmark_origin"):
        ModelMeta(landmark_origin="corner")
    with pytest.raises(UserError, match="centerface_meta"):
        ModelMeta.from_json('{"head_width": 24, "bogus": 1}', where="f.ckpt")


def test_round_trip_with_meta_and_extra(ms, tmp_path):
    from centerface_flow.checkpoint import load_checkpoint, load_network, save_checkpoint
    from centerface_flow.nets.centerface import CenterFace

    net = CenterFace(head_width=24, activation="relu", init_seed=7)
    meta = ModelMeta.released(source="unit test")
    extra = {"epoch": 3, "note": "hello", "moment1.hm_head.0.weight": np.full((1, 24, 1, 1), 0.5, np.float32)}
    path = save_checkpoint(tmp_path / "sub" / "m.ckpt", net, meta, extra=extra)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["m.ckpt"]  # no temporary file left behind
    params, meta2, extra2 = load_checkpoint(path)
    assert meta2 == meta
    assert extra2["epoch"] == 3 and extra2["note"] == "hello"
    np.testing.assert_array_equal(extra2["moment1.hm_head.0.weight"], extra["moment1.hm_head.0.weight"])
    assert set(params) == {p.name for p in net.get_parameters()}
    loaded, meta3 = load_network(path)
    assert meta3 == meta
    for p in loaded.get_parameters():
        np.testing.assert_array_equal(p.asnumpy(), net.parameters_dict()[p.name].asnumpy())


def test_missing_file_and_bad_suffix(ms, tmp_path):
    from centerface_flow.checkpoint import load_checkpoint, save_checkpoint

    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "nope.ckpt")
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(UserError, match=r"\*\.ckpt"):
        load_checkpoint(tmp_path / "w.bin")
    with pytest.raises(UserError, match=r"\*\.ckpt"):
        save_checkpoint(tmp_path / "w.bin", {"a": np.zeros(2, np.float32)}, ModelMeta())


def test_model_zoo_checkpoint_without_meta(ms, tmp_path, caplog):
    from centerface_flow.checkpoint import load_checkpoint, load_network
    from centerface_flow.nets.centerface import CenterFace

    net = CenterFace(head_width=64, activation="relu6", init_seed=1)
    # as the zoo's training wrapper saves it: prefixed names plus optimizer state, no metadata
    items = [{"name": "network.centerface_network." + p.name, "data": p} for p in net.get_parameters()]
    items.append({"name": "moment1.network.centerface_network.hm_head.0.weight",
                  "data": ms.Tensor(np.zeros((1, 64, 1, 1), np.float32))})
    items.append({"name": "global_step", "data": ms.Tensor(np.array([5], np.int32))})
    path = tmp_path / "zoo.ckpt"
    ms.save_checkpoint(items, str(path))
    with caplog.at_level(logging.WARNING, logger="centerface_flow.checkpoint"):
        params, meta, extra = load_checkpoint(path)
    assert "model-zoo conventions" in caplog.text
    assert meta == ModelMeta.model_zoo(head_width=64, source=meta.source)
    assert meta.activation == "relu6" and meta.input_format == "bgr_meanstd"
    assert set(params) == {p.name for p in net.get_parameters()} and extra == {}
    loaded, _ = load_network(path)
    np.testing.assert_array_equal(loaded.parameters_dict()["dla_up.conv.0.weight"].asnumpy(),
                                  net.parameters_dict()["dla_up.conv.0.weight"].asnumpy())


def test_checkpoint_that_is_not_centerface(ms, tmp_path):
    from centerface_flow.checkpoint import load_checkpoint, load_network, save_checkpoint

    path = tmp_path / "other.ckpt"
    ms.save_checkpoint([{"name": "fc.weight", "data": ms.Tensor(np.zeros((2, 2), np.float32))}], str(path))
    with pytest.raises(UserError, match="not a CenterFace checkpoint"):
        load_checkpoint(path)
    partial = tmp_path / "partial.ckpt"
    save_checkpoint(partial, {"hm_head.0.weight": np.zeros((1, 24, 1, 1), np.float32)}, ModelMeta.released())
    with pytest.raises(UserError, match="missing: .*base.need_fp1.0.features.0.weight"):
        load_network(partial)
