"""WIDER FACE label conversion: both input formats, malformed lines, dropped boxes, the COCO JSON."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from centerface_flow.data.annotations import load_coco, read_bbx_gt, read_labels, read_retinaface_labels, to_coco
from centerface_flow.errors import UserError

LABEL_TXT = """\
# 0--Parade/a.jpg
10 20 30 40 15.0 30.0 0.0 35.0 30.0 0.0 25.0 40.0 1.0 17.0 50.0 0.0 33.0 50.0 0.0 0.82
5 5 0 10 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0
50 60 8 9 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0
# 1--Handshaking/b.jpg
1 2 3 4
"""

BBX_GT = """\
0--Parade/a.jpg
2
10 20 30 40 2 0 0 0 0 0
1 1 -3 5 0 0 0 0 0 0
0--Parade/empty.jpg
0
0 0 0 0 0 0 0 0 0 0
1--Handshaking/b.jpg
1
1 2 3 4 0 0 0 1 0 0
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_retinaface_labels_landmarks_and_drops(tmp_path):
    images, dropped = read_retinaface_labels(_write(tmp_path, "label.txt", LABEL_TXT))
    assert [im.file_name for im in images] == ["0--Parade/a.jpg", "1--Handshaking/b.jpg"]
    assert dropped == 1  # the zero-width box
    face = images[0].faces[0]
    np.testing.assert_allclose(face.box, [10, 20, 30, 40])
    np.testing.assert_allclose(face.keypoints[:, :2], [[15, 30], [35, 30], [25, 40], [17, 50], [33, 50]])
    np.testing.assert_allclose(face.keypoints[:, 2], [2, 2, 1, 2, 2])  # 1.0 flag = occluded → v=1
    assert (images[0].faces[1].keypoints == 0).all()  # -1 landmarks → absent
    assert (images[1].faces[0].keypoints == 0).all()  # boxes-only line


def test_bbx_gt_empty_image_dummy_line_and_invalid(tmp_path):
    path = _write(tmp_path, "gt.txt", BBX_GT)
    images, dropped = read_bbx_gt(path)
    assert [im.file_name for im in images] == ["0--Parade/a.jpg", "0--Parade/empty.jpg", "1--Handshaking/b.jpg"]
    assert [len(im.faces) for im in images] == [1, 0, 1]
    assert dropped == 1
    images, dropped = read_bbx_gt(path, drop_invalid=True)
    assert [len(im.faces) for im in images] == [1, 0, 0]
    assert dropped == 2


@pytest.mark.parametrize(
    "text, where",
    [
        ("# a.jpg\n1 2 3\n", ":2:"),
        ("# a.jpg\n1 2 3 4 5 6 7\n", ":2:"),
        ("# a.jpg\n1 2 x 4\n", ":2:"),
        ("1 2 3 4\n", ":1:"),
    ],
)
def test_malformed_label_lines_name_file_and_line(tmp_path, text, where):
    path = _write(tmp_path, "label.txt", text)
    with pytest.raises(UserError, match=f"label.txt{where}"):
        read_labels(path) if not text.startswith("1") else read_retinaface_labels(path)


def test_malformed_bbx_gt_count(tmp_path):
    path = _write(tmp_path, "gt.txt", "a.jpg\ntwo\n1 2 3 4\n")
    with pytest.raises(UserError, match="gt.txt:2: expected a face count, got 'two'"):
        read_bbx_gt(path)
    path = _write(tmp_path, "gt.txt", "a.jpg\n-3\n1 2 3 4\n")
    with pytest.raises(UserError, match="gt.txt:2: expected a face count >= 0, got -3"):
        read_bbx_gt(path)


def test_dropped_count_is_logged(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        read_labels(_write(tmp_path, "label.txt", LABEL_TXT))
    assert "dropped 1 boxes" in caplog.text


def test_coco_roundtrip_and_cli(tmp_path):
    import cv2

    from centerface_flow.cli import main

    label = _write(tmp_path, "label.txt", LABEL_TXT)
    for name, (h, w) in {"0--Parade/a.jpg": (90, 120), "1--Handshaking/b.jpg": (30, 40)}.items():
        (tmp_path / "img" / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "img" / name), np.zeros((h, w, 3), np.uint8))
    out = tmp_path / "train.json"
    assert main(["annotations", "--labels", str(label), "--images", str(tmp_path / "img"), "--out", str(out)]) == 0
    coco = json.loads(out.read_text())
    assert [(im["width"], im["height"]) for im in coco["images"]] == [(120, 90), (40, 30)]
    ann = coco["annotations"][0]
    assert ann["bbox"] == [10, 20, 30, 40] and len(ann["keypoints"]) == 15 and ann["num_keypoints"] == 5
    assert coco["annotations"][1]["num_keypoints"] == 0
    samples = load_coco(out)
    assert [s[0] for s in samples] == ["0--Parade/a.jpg", "1--Handshaking/b.jpg"]
    assert samples[0][1].shape == (2, 4) and samples[0][2].shape == (2, 5, 3)
    # a missing image is a user error naming the folder
    (tmp_path / "img" / "1--Handshaking/b.jpg").unlink()
    assert main(["annotations", "--labels", str(label), "--images", str(tmp_path / "img"), "--out", str(out)]) == 2
    with pytest.raises(UserError, match="missing"):
        to_coco(read_labels(label), tmp_path / "img")


@pytest.mark.realdata
def test_real_bbx_gt_and_label_txt(widerface):
    images = read_labels(widerface / "wider_face_split" / "wider_face_val_bbx_gt.txt")
    assert len(images) == 3226
    # the official count is 39,708 boxes including degenerate ones; every kept box has positive size
    n = sum(len(im.faces) for im in images)
    assert 39000 < n <= 39708
    rf = read_labels(widerface / "retinaface_labels" / "val" / "label.txt")
    assert len(rf) == 3226
