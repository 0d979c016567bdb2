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
    assert report == result and report["passed"] and report["dynamic"]
    assert set(report["relative_error"]) == {"heatmap", "size", "offset", "landmarks"}
    assert max(report["relative_error"].values()) <= 1e-4
    # the configured size, a batch of 2, a size that is not a multiple of 32
    assert [c["input_shape"] for c in report["checks"]] == [[1, 3, 96, 128], [2, 3, 64, 48], [1, 3, 97, 131]]
    assert [c["output_hw"] for c in report["checks"]] == [[24, 32], [16, 12], [25, 33]]
    assert all(c["passed"] and c["worst"] <= 1e-4 for c in report["checks"])
    if fmt == "onnx":
        import onnx
        import onnxruntime as ort

        props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
        assert json.loads(props["centerface_meta"])["input_format"] == "bgr_meanstd"
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["input"]
        assert [o.name for o in session.get_outputs()] == ["heatmap", "size", "offset", "landmarks"]
        outs = session.run(None, {"input": np.zeros((3, 3, 33, 70), np.float32)})
        assert [o.shape for o in outs] == [(3, 1, 9, 18), (3, 2, 9, 18), (3, 2, 9, 18), (3, 10, 9, 18)]


@pytest.mark.parametrize("fmt", ["onnx", "mindir"])
def test_fixed_shape_export(checkpoint, image, tmp_path, fmt):
    from centerface_flow.export import export_checkpoint

    result = export_checkpoint(checkpoint, tmp_path / f"best.{fmt}", fmt, image, width=64, height=96, dynamic=False)
    assert not result["dynamic"] and result["input_shape"] == [1, 3, 96, 64] and result["padding"] is None
    assert [c["input_shape"] for c in result["checks"]] == [[1, 3, 96, 64]] and result["passed"]
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(tmp_path / "best.onnx"), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].shape == [1, 3, 96, 64]


def test_export_settings_refuse_bad_values():
    from centerface_flow.export import ExportSettings

    with pytest.raises(UserError, match="height"):
        ExportSettings(height=100)
    with pytest.raises(UserError, match="dynamic"):
        ExportSettings(dynamic="yes")
    assert ExportSettings(dynamic=False).check_shapes() == [(1, 3, 480, 640)]
    assert ExportSettings().check_shapes("air") == [(1, 3, 480, 640)]
    assert ExportSettings().check_shapes() == [(1, 3, 480, 640), (2, 3, 320, 240), (1, 3, 481, 643)]


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


@pytest.fixture(scope="module")
def released_export(tmp_path_factory, released_onnx):
    """The released model as a checkpoint and its dynamic ONNX export, checked on a photo with a face."""
    import cv2
    from skimage import data

    from centerface_flow import runtime

    runtime.mindspore("graph")
    from centerface_flow.convert.released import convert_released
    from centerface_flow.export import export_checkpoint

    folder = tmp_path_factory.mktemp("released")
    photo = folder / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    ckpt = convert_released(released_onnx, folder / "released.ckpt")
    report = export_checkpoint(ckpt, folder / "best.onnx", "onnx", photo, width=128, height=96)
    return ckpt, folder / "best.onnx", photo, report


def test_dynamic_onnx_equals_the_checkpoint_at_any_shape(released_export):
    import cv2
    import onnxruntime as ort

    from centerface_flow.checkpoint import load_network
    from centerface_flow.export import relative_error
    from centerface_flow.export.graph import pad_reference
    from centerface_flow.runtime import mindspore

    ckpt, onnx_path, photo, report = released_export
    assert report["passed"] and [c["input_shape"] for c in report["checks"]] == [
        [1, 3, 96, 128], [2, 3, 64, 48], [1, 3, 97, 131]]
    assert all(c["worst"] <= 1e-4 for c in report["checks"])
    # one more odd size, with a face large enough to light up the heatmap: the comparison is not of near-zeros
    image = cv2.resize(cv2.imread(str(photo)), (203, 150))
    x = np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32)  # rgb255
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    outs = session.run(None, {"input": x})
    ms = mindspore("graph")
    net, _ = load_network(ckpt)
    refs = pad_reference(lambda p: [o.asnumpy() for o in net(ms.Tensor(p))], x)
    assert outs[0].shape == (1, 1, 38, 51) and refs[0].max() > 0.5
    assert max(relative_error(o, r) for o, r in zip(outs, refs)) <= 1e-4


def test_model_card(released_export, tmp_path):
    import cv2
    import onnxruntime as ort

    from centerface_flow.export.card import write_model_card
    from centerface_flow.inference.decode import decode_cells

    ckpt, onnx_path, photo, report = released_export
    check = tmp_path / "best.onnx.check.json"
    check.write_text(json.dumps(report))
    best = tmp_path / "best.txt"
    best.write_text("epoch_2\nmetric: hard\neasy: 0.93\nmedium: 0.92\nhard: 0.81\n")
    ap = tmp_path / "ap_by_epoch.csv"
    ap.write_text("model,epoch,easy,medium,hard,images,faces,iou,protocol\n"
                  "epoch_2,2,0.93,0.92,0.81,610,39708,0.5,python\nreleased,,0.934,0.921,0.810,610,39708,0.5,python\n")
    out = tmp_path / "best.md"
    text = write_model_card(out, best, ap, [check], onnx_path, ckpt, copy="results/best.ckpt")
    assert out.read_text() == text
    for expected in ("# CenterFace model card: `epoch_2`", f"`{ckpt}` (copy: `results/best.ckpt`)",
                     "| `epoch_2` (this model) | 0.9300 | 0.9200 | 0.8100 |", "| `released` (the authors' model",
                     "610 images, 39708 faces, IoU 0.5, protocol python", "(batch, 3, height, width)",
                     "batch, height and width are dynamic", "RGB, float 0-255", "multiples of 32",
                     "| `heatmap` | (batch, 1, out_height, out_width) |", "`landmarks` | (batch, 10,",
                     "origin = the box centre", "1×3×96×128:", "2×3×64×48:", "1×3×97×131:",
                     f"centerface detect --weights {onnx_path} --out faces/ --draw photo.jpg"):
        assert expected in text, expected
    # the ONNX Runtime snippet runs as printed (on a photo whose sides are not multiples of 32) and decodes the
    # boxes as the package's decoder does
    snippet = text.split("```python\n")[1].split("```")[0]
    assert len(snippet.strip().splitlines()) <= 11
    odd = tmp_path / "odd.png"
    cv2.imwrite(str(odd), cv2.resize(cv2.imread(str(photo)), (301, 255)))
    scope = {}
    exec(snippet.replace('"photo.jpg"', repr(str(odd))), scope)  # noqa: S102 - the card's own example
    assert len(scope["scores"]) >= 1 and scope["heatmap"].shape == (1, 1, 64, 76)
    outs = [o[0] for o in ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(
        None, {"input": scope["x"]})]
    dets = decode_cells(scope["ys"], scope["xs"], *outs, landmark_origin="center")
    np.testing.assert_allclose(scope["boxes"], dets.boxes, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(scope["scores"], dets.scores)
