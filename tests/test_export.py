"""Export to ONNX and MINDIR, verified against the checkpoint; AIR refused off Ascend."""
import json

import numpy as np
import pytest

from centerface_flow.errors import UserError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from centerface_flow import runtime

    runtime.mindspore()
    from centerface_flow.checkpoint import ModelMeta, build_network, save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    meta = ModelMeta.model_zoo(head_width=24, source="export test")
    save_checkpoint(path, build_network(meta), meta)
    return path


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    from centerface_flow.data.demo import DemoSpec, build_demo

    paths = build_demo(tmp_path_factory.mktemp("demo"), DemoSpec(train_images=1, val_images=1))
    return next(paths["val_images"].rglob("*.jpg"))


@pytest.mark.parametrize("fmt", ["onnx", "mindir"])
def test_export_round_trip(checkpoint, image, tmp_path, fmt):
    from centerface_flow.export import export_checkpoint

    out = tmp_path / f"best.{fmt}"
    result = export_checkpoint(checkpoint, out, fmt, image, width=128, height=96)
    assert out.is_file() and out.stat().st_mode & 0o044  # readable by others, not MindSpore's 0400
    report = json.loads((tmp_path / f"best.{fmt}.check.json").read_text())
    assert report == result and report["passed"]
    assert set(report["relative_error"]) == {"heatmap", "size", "offset", "landmarks"}
    assert max(report["relative_error"].values()) <= 1e-4


def test_onnx_export_carries_meta_and_runs(checkpoint, image, tmp_path):
    import onnx
    import onnxruntime as ort

    from centerface_flow.export import export_checkpoint

    out = tmp_path / "best.onnx"
    export_checkpoint(checkpoint, out, "onnx", image, width=64, height=64)
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["centerface_meta"])["input_format"] == "bgr_meanstd"
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    outs = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 64, 64), np.float32)})
    assert [o.shape for o in outs] == [(1, 1, 16, 16), (1, 2, 16, 16), (1, 2, 16, 16), (1, 10, 16, 16)]


def test_air_refused_without_ascend(checkpoint, image, tmp_path, monkeypatch):
    from centerface_flow.export import export_checkpoint

    monkeypatch.setenv("CENTERFACE_DEVICE", "CPU")
    with pytest.raises(UserError, match="Ascend"):
        export_checkpoint(checkpoint, tmp_path / "best.air", "air", image, width=64, height=64)
    assert not (tmp_path / "best.air").exists()


def test_unknown_format(checkpoint, image, tmp_path):
    from centerface_flow.export import export_checkpoint

    with pytest.raises(UserError, match="unknown export format"):
        export_checkpoint(checkpoint, tmp_path / "best.tflite", "tflite", image)


def test_first_image_of_a_folder(tmp_path, image):
    from centerface_flow.export import first_image

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("not an image")
    with pytest.raises(UserError, match="no image"):
        first_image(tmp_path)
    (tmp_path / "a").mkdir()
    target = tmp_path / "a" / "x.jpg"
    target.write_bytes(image.read_bytes())
    assert first_image(tmp_path) == target
