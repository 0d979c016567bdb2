"""Inference to candidates: geometry through every size policy / scale / flip, and `centerface infer`."""
from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from centerface_flow.inference.candidates import load_candidates
from centerface_flow.inference.detect import InferenceConfig, detect_image, infer_images

# landmark positions relative to the box (x, y): image-left eye, image-right eye, nose, left / right mouth corner
REL_LMS = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.35, 0.75], [0.65, 0.75]])


class SquareFinder:
    """A fake network that "detects" the bright rectangle in its input with the model zoo's head conventions."""

    meta = SimpleNamespace(input_format="rgb255", mean=(0, 0, 0), std=(1, 1, 1), landmark_origin="cell")
    weights = Path("fake.ckpt")
    backend = "fake"
    description = "square finder"

    def __call__(self, batch):
        n, _, height, width = batch.shape
        hm = np.zeros((n, 1, height // 4, width // 4), np.float32)
        size = np.zeros((n, 2, height // 4, width // 4), np.float32)
        off = np.zeros_like(size)
        lms = np.zeros((n, 10, height // 4, width // 4), np.float32)
        for b in range(n):
            ys, xs = np.nonzero(batch[b, 0] > 128)
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
            row, col = int(cy // 4), int(cx // 4)
            hm[b, 0, row, col] = 0.9
            hm[b, 0, row, min(col + 2, width // 4 - 1)] = 0.2  # a second, weaker peak
            off[b, :, row, col] = (cx / 4 - col, cy / 4 - row)
            size[b, :, row, col] = (np.log(w / 16), np.log(h / 16))
            pts = np.array([x0, y0]) + REL_LMS * [w, h]
            lms[b, :, row, col] = ((pts - [4 * col, 4 * row]) / [w, h]).ravel()
        return hm, size, off, lms


BOX = np.array([150, 90, 270, 250], np.float32)


def square_photo(width: int = 480, height: int = 320) -> np.ndarray:
    img = np.zeros((height, width, 3), np.uint8)
    x0, y0, x1, y1 = BOX.astype(int)
    img[y0:y1, x0:x1] = 255
    return img


@pytest.mark.parametrize("size", ["released", "letterbox"])
@pytest.mark.parametrize(("scales", "flip"), [((1.0,), False), ((1.0,), True), ((0.5, 1.0, 1.5), True)])
def test_candidates_land_on_the_face_in_original_pixels(size, scales, flip):
    cfg = InferenceConfig(size=size, scales=scales, flip=flip, top_k=5)
    boxes, scores, lms, passes = detect_image(SquareFinder(), square_photo(), cfg)
    assert len(cfg.passes) == len(scales) * (2 if flip else 1)
    assert sorted(set(passes.tolist())) == list(range(len(cfg.passes)))
    assert np.all(np.diff(scores) <= 0)
    best = scores == np.float32(0.9)
    assert best.sum() == len(cfg.passes)
    for pass_box, pass_lms in zip(boxes[best], lms[best]):
        # resampling blurs the square's edge by about one input pixel
        np.testing.assert_allclose(pass_box, BOX, atol=3.0)
        expect = BOX[:2] + REL_LMS * (BOX[2:] - BOX[:2])
        np.testing.assert_allclose(pass_lms, expect, atol=3.0)


def test_max_side_caps_the_input_and_keeps_original_coordinates():
    seen = []

    class Recording(SquareFinder):
        def __call__(self, batch):
            seen.append(batch.shape[2:])
            return super().__call__(batch)

    cfg = InferenceConfig(size="released", scales=(1.0, 0.5), top_k=5, max_side=240)
    boxes, scores, _, _ = detect_image(Recording(), square_photo(480, 320), cfg)
    assert seen == [(160, 256), (96, 128)]  # 480x320 processed as 240x160, then x0.5 (multiples of 32)
    np.testing.assert_allclose(boxes[scores == np.float32(0.9)], [BOX, BOX], atol=6.0)
    seen.clear()
    detect_image(Recording(), square_photo(480, 320), InferenceConfig(max_side=1000))
    assert seen == [(320, 480)], "images below the cap are untouched"
    seen.clear()
    detect_image(Recording(), square_photo(480, 320), InferenceConfig(scales=(1.0, 2.0), max_side=480))
    assert seen == [(160, 256), (320, 480)], "the largest pass is capped: x2 would be 960 wide, so all shrink by half"


def test_tta_preset_and_its_command_line():
    from centerface_flow.cli import build_parser
    from centerface_flow.settings import from_args

    def inference_config_from_args(args):
        return from_args(InferenceConfig, args)
    from centerface_flow.errors import UserError
    from centerface_flow.inference.detect import TTA_MAX_SIDE, TTA_MIN_SCORE, TTA_SCALES

    base = ["infer", "--weights", "w.ckpt", "--images", "i", "--out", "o.npz"]
    cfg = inference_config_from_args(build_parser().parse_args(base + ["--tta"]))
    assert cfg == InferenceConfig(tta=True) and cfg.scales == TTA_SCALES and cfg.flip and cfg.max_side == TTA_MAX_SIDE
    assert cfg.min_score == TTA_MIN_SCORE and len(cfg.passes) == 2 * len(TTA_SCALES)
    assert inference_config_from_args(build_parser().parse_args(base + ["--tta", "--max-side", "999"])).max_side == 999
    with pytest.raises(UserError, match="tta"):
        inference_config_from_args(build_parser().parse_args(base + ["--tta", "--scales", "1", "2"]))
    plain = inference_config_from_args(build_parser().parse_args(base))
    assert plain == InferenceConfig() and plain.decode == "cells" and plain.max_side == 0


def test_inference_config_checks():
    from centerface_flow.errors import UserError

    assert InferenceConfig(scales=(0.5, 1), flip=True).passes == ((0.5, False), (0.5, True), (1.0, False),
                                                                  (1.0, True))
    for bad in ({"size": "square"}, {"scales": ()}, {"scales": (0,)}, {"top_k": 0}, {"max_side": -1},
                {"decode": "blobs"}, {"min_score": 0.0}, {"letterbox_size": 100}, {"min_score": float("nan")},
                {"scales": (float("inf"),)}):
        with pytest.raises(UserError):
            InferenceConfig(**bad)


def wider_folder(root: Path, corrupt: bool = False) -> Path:
    """A tiny WIDER-layout folder: two events, scikit-image's astronaut photo (one face) at two sizes."""
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    (root / "0--One").mkdir(parents=True)
    (root / "1--Two").mkdir()
    cv2.imwrite(str(root / "0--One" / "a.jpg"), photo)
    cv2.imwrite(str(root / "1--Two" / "b.jpg"), cv2.resize(photo, (300, 420)))
    if corrupt:
        (root / "1--Two" / "c.jpg").write_bytes(b"\xff\xd8\xff broken")
    return root


def test_auto_mode_is_pynative_on_cpu_and_graph_on_ascend(monkeypatch):
    from centerface_flow.errors import UserError
    from centerface_flow.inference.backends import PAD_MULTIPLE, default_pad_multiple, resolve_mode

    monkeypatch.setenv("CENTERFACE_DEVICE", "CPU")
    assert resolve_mode("auto") == "pynative"
    monkeypatch.setenv("CENTERFACE_DEVICE", "Ascend")
    assert resolve_mode("auto") == "graph"
    assert resolve_mode("graph") == "graph" and resolve_mode("pynative") == "pynative"
    with pytest.raises(UserError, match="mode: must be one of auto, graph, pynative"):
        resolve_mode("eager")
    # padding only buys shared compiled graphs: none in pynative mode
    assert default_pad_multiple("released", (1.0,), "graph") == PAD_MULTIPLE
    assert default_pad_multiple("released", (1.0,), "pynative") == 0
    assert default_pad_multiple("letterbox", (1.0,), "graph") == 0


def test_infer_images_records_failures(tmp_path):
    from centerface_flow.inference.detect import collect_images

    root = wider_folder(tmp_path / "imgs", corrupt=True)
    images = collect_images(root)
    assert [rel for _, rel in images] == ["0--One/a.jpg", "1--Two/b.jpg", "1--Two/c.jpg"]

    class Bright(SquareFinder):
        def __call__(self, batch):
            return super().__call__(np.where(batch > 250, 255, 0).astype(np.float32))

    cands = infer_images(Bright(), images, InferenceConfig(top_k=3), progress=False)
    assert cands.paths == ["0--One/a.jpg", "1--Two/b.jpg"] and cands.failed == ["1--Two/c.jpg"]
    assert cands.sizes.tolist() == [[512, 512], [300, 420]]
    assert cands.meta["inference"]["top_k"] == 3 and cands.meta["backend"] == "fake"


def test_read_ahead_reads_the_next_image_on_a_thread(tmp_path, monkeypatch):
    from centerface_flow.inference import detect
    from centerface_flow.inference.preprocess import ImageReadError

    readers = []
    read_image = detect.read_image

    def spy(path):
        readers.append(threading.current_thread().name)
        return read_image(path)

    monkeypatch.setattr(detect, "read_image", spy)
    paths = [path for path, _ in detect.collect_images(wider_folder(tmp_path / "imgs", corrupt=True))]
    reads = detect.read_ahead(paths)
    first = next(reads)
    deadline = time.monotonic() + 10
    while len(readers) < 2 and time.monotonic() < deadline:  # the second image comes without being asked for
        time.sleep(0.01)
    assert len(readers) == 2
    a, b, c = first, *reads
    assert a.shape == (512, 512, 3) and b.shape == (420, 300, 3)
    assert isinstance(c, ImageReadError) and "c.jpg" in str(c)
    assert len(readers) == 3 and all(name.startswith("read-ahead") for name in readers)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "centerface_flow.cli", *args], capture_output=True, text=True,
                          timeout=600, check=False)


def test_infer_command_with_released_onnx(tmp_path, released_onnx):
    root = wider_folder(tmp_path / "imgs", corrupt=True)
    out = tmp_path / "cands.npz"
    res = run_cli("infer", "--weights", str(released_onnx), "--images", str(root), "--out", str(out), "--flip",
                  "--scales", "0.5", "1", "--decode", "peaks", "--top-k", "50")
    assert res.returncode == 1, res.stderr  # the corrupt image makes the run fail, after writing the file
    assert "c.jpg" in res.stderr
    cands = load_candidates(out)
    assert cands.failed == ["1--Two/c.jpg"] and len(cands) == 2
    assert len(cands.meta["inference"]["passes"]) == 4
    # the time per image of each stage is reported, and kept with the candidates
    assert re.search(r"ms per image: read [\d.]+, preprocess [\d.]+, network [\d.]+, decode [\d.]+, write [\d.]+",
                     res.stderr), res.stderr
    stages = cands.meta["stage_seconds"]
    assert set(stages) == {"read", "preprocess", "network", "decode"}
    assert all(v >= 0 for v in stages.values()) and stages["network"] > 0
    for i in range(2):
        boxes, scores, lms = cands.image(i)
        assert len(scores) <= 4 * 50 and scores[0] > 0.5, "the astronaut's face"
        # all four passes find her face: their best boxes agree
        w, h = cands.sizes[i]
        top = boxes[:4]
        assert np.all(np.abs(top - top.mean(0)) < 0.08 * max(w, h))
        inside = (lms[0, :, 0] > boxes[0, 0]) & (lms[0, :, 0] < boxes[0, 2]) & (lms[0, :, 1] > boxes[0, 1])
        assert inside.all()
        assert lms[0, 0, 0] < lms[0, 1, 0], "landmark 0 is the eye on the image's left"


@pytest.mark.realdata
@pytest.mark.slow
def test_released_onnx_on_real_val_images(tmp_path, widerface, released_onnx):
    """infer → postprocess → evaluate on the first 10 shared val images (one event) with the released model."""
    images = tmp_path / "images"
    (images / "0--Parade").mkdir(parents=True)
    for src in sorted((widerface / "WIDER_val" / "images" / "0--Parade").glob("*.jpg"))[:10]:
        (images / "0--Parade" / src.name).symlink_to(src)
    res = run_cli("infer", "--weights", str(released_onnx), "--images", str(images), "--out", str(tmp_path / "c.npz"))
    assert res.returncode == 0, res.stderr
    res = run_cli("postprocess", str(tmp_path / "c.npz"), "--out", str(tmp_path / "tree"))
    assert res.returncode == 0, res.stderr
    assert len(list((tmp_path / "tree" / "0--Parade").glob("*.txt"))) == 10
    res = run_cli("evaluate", "--pred", str(tmp_path / "tree"), "--gt", str(widerface / "ground_truth"), "--subset",
                  "--out", str(tmp_path / "ap.tsv"))
    assert res.returncode == 0, res.stderr
    lines = (tmp_path / "ap.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    ap = {row.split("\t")[header.index("setting")]: float(row.split("\t")[header.index("ap")]) for row in lines[1:]}
    # parade crowds: the released model finds most easy/medium faces; hard ones (tiny) much less
    assert ap["easy"] > 0.8 and ap["medium"] > 0.75 and 0.3 < ap["hard"] < ap["medium"], ap
