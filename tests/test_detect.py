"""`centerface detect` end to end, and the runners (released ONNX, converted checkpoint, our ONNX export)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from centerface_flow.errors import UserError
from centerface_flow.inference.backends import default_backend, make_runner
from centerface_flow.postprocess.predictions import LANDMARKS_FILE


def astronaut(path: Path, size: tuple[int, int] | None = None) -> Path:
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    if size:
        photo = cv2.resize(photo, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), photo)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "centerface_flow.cli", *args], capture_output=True, text=True,
                          timeout=900, check=False)


def read_txt(path: Path) -> np.ndarray:
    lines = path.read_text().splitlines()
    rows = np.array([[float(v) for v in ln.split()] for ln in lines[2:]]).reshape(-1, 5)
    assert lines[0] == path.stem and int(lines[1]) == len(rows)
    return rows


def test_detect_folder_with_a_corrupt_image(tmp_path, released_onnx):
    folder = tmp_path / "photos"
    astronaut(folder / "astro.png")
    astronaut(folder / "sub" / "small.jpg", (256, 300))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    out = tmp_path / "out"
    res = run_cli("detect", "--weights", str(released_onnx), "--out", str(out), "--draw", str(folder))
    assert res.returncode == 1, res.stderr
    assert "broken.jpg" in res.stderr and "Traceback" not in res.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["astro.txt", "astro_faces.jpg", "small.txt", "small_faces.jpg", LANDMARKS_FILE])
    rows = read_txt(out / "astro.txt")
    assert len(rows) == 1 and rows[0, 4] > 0.8, "exactly one face (the astronaut) above the 0.5 default"
    x, y, w, h = rows[0, :4]
    assert 150 < x + w / 2 < 260 and 60 < y + h / 2 < 160 and 60 < w < 140
    table = [ln.split("\t") for ln in (out / LANDMARKS_FILE).read_text().splitlines()]
    assert table[0][:3] == ["image", "rank", "score"]
    astro = [r for r in table[1:] if r[0] == "astro"]
    pts = np.array(astro[0][3:], float).reshape(5, 2)
    assert np.all((pts[:, 0] > x) & (pts[:, 0] < x + w) & (pts[:, 1] > y) & (pts[:, 1] < y + h))
    assert cv2.imread(str(out / "astro_faces.jpg")).shape == (512, 512, 3)

    # a second run on one file updates its rows and keeps the other image's
    res = run_cli("detect", "--weights", str(released_onnx), "--out", str(out), "--score-threshold", "0",
                  "--nms", "gaussian", str(folder / "astro.png"))
    assert res.returncode == 0, res.stderr
    table = [ln.split("\t") for ln in (out / LANDMARKS_FILE).read_text().splitlines()]
    assert {r[0] for r in table[1:]} == {"astro", "small"}
    assert len([r for r in table[1:] if r[0] == "astro"]) == len(read_txt(out / "astro.txt")) > 1


def test_detect_user_errors(tmp_path, released_onnx):
    astronaut(tmp_path / "a" / "x.png")
    astronaut(tmp_path / "b" / "x.jpg")
    res = run_cli("detect", "--weights", str(released_onnx), "--out", str(tmp_path / "o"), str(tmp_path / "a"),
                  str(tmp_path / "b"))
    assert res.returncode == 2 and "x.txt" in res.stderr
    res = run_cli("detect", "--weights", str(tmp_path / "w.pt"), "--out", str(tmp_path / "o"), str(tmp_path / "a"))
    assert res.returncode == 2 and "w.pt" in res.stderr
    res = run_cli("detect", "--weights", str(released_onnx), "--backend", "mindspore", "--out", str(tmp_path / "o"),
                  str(tmp_path / "a"))
    assert res.returncode == 2 and ".ckpt" in res.stderr


def test_backend_choice(tmp_path):
    assert default_backend("a/b.ckpt") == "mindspore" and default_backend("x.ONNX") == "onnxruntime"
    with pytest.raises(UserError, match="weights"):
        default_backend("m.pth")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(UserError, match="junk.onnx"):
        make_runner(junk)


@pytest.mark.slow
def test_checkpoint_and_exported_onnx_agree_with_released_onnx(tmp_path, released_onnx):
    """Released ONNX (ONNX Runtime) = converted checkpoint (MindSpore) = our fixed-size ONNX export run at other
    sizes: same candidates on a 640x480 and a portrait image, for both size policies."""
    from centerface_flow import runtime

    runtime.mindspore("graph")
    from centerface_flow.convert.released import convert_released
    from centerface_flow.export import export_checkpoint
    from centerface_flow.inference.detect import InferenceConfig, detect_image
    from centerface_flow.inference.preprocess import read_image

    ckpt = convert_released(released_onnx, tmp_path / "released.ckpt")
    check = astronaut(tmp_path / "check.png", (320, 256))
    export_checkpoint(ckpt, tmp_path / "ours.onnx", "onnx", check, width=320, height=256)
    runners = [make_runner(released_onnx), make_runner(ckpt), make_runner(tmp_path / "ours.onnx")]
    assert [r.backend for r in runners] == ["onnxruntime", "mindspore", "onnxruntime"]
    assert all(r.meta.input_format == "rgb255" and r.meta.landmark_origin == "center" for r in runners)
    images = [read_image(astronaut(tmp_path / "land.png", (640, 480))),
              read_image(astronaut(tmp_path / "port.png", (300, 420)))]
    for image in images:
        for size in ("released", "letterbox"):
            cfg = InferenceConfig(size=size, top_k=20)
            ref_boxes, ref_scores, ref_lms, _ = detect_image(runners[0], image, cfg)
            for runner in runners[1:]:
                boxes, scores, lms, _ = detect_image(runner, image, cfg)
                np.testing.assert_allclose(scores, ref_scores, atol=1e-4, err_msg=runner.description)
                strong = ref_scores > 0.05
                np.testing.assert_allclose(boxes[strong], ref_boxes[strong], atol=0.05, err_msg=runner.description)
                np.testing.assert_allclose(lms[strong], ref_lms[strong], atol=0.05, err_msg=runner.description)
