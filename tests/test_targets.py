"""Dense target encoding: gaussian, masks, and encode → decode round trips (reference inverse and the real decode)."""
from __future__ import annotations

import numpy as np
import pytest

from centerface_flow.data.targets import (
    IGNORE,
    decode_targets,
    draw_gaussian,
    encode,
    gaussian_radius,
    small_face_weight,
)


def random_faces(rng: np.random.Generator, out_hw=(32, 40), n=6, min_size=3.0, spacing=4):
    """Faces inside the map with distinct integer centres at least ``spacing`` apart (so peaks don't merge)."""
    out_h, out_w = out_hw
    boxes, lms, centres = [], [], []
    while len(boxes) < n:
        w, h = rng.uniform(min_size, 12, size=2)
        x1 = rng.uniform(0, out_w - 1 - w)
        y1 = rng.uniform(0, out_h - 1 - h)
        c = np.array([x1 + w / 2, y1 + h / 2])
        if any(np.abs(c - o).max() < spacing for o in centres):
            continue
        centres.append(c)
        boxes.append([x1, y1, x1 + w, y1 + h])
        pts = np.stack([rng.uniform(x1, x1 + w, 5), rng.uniform(y1, y1 + h, 5), np.full(5, 2.0)], 1)
        lms.append(pts)
    return np.asarray(boxes, np.float32), np.asarray(lms, np.float32)


def test_gaussian_radius_reference_values():
    # CenterNet's formula as shipped (min over its three cases)
    assert gaussian_radius(10, 10) == pytest.approx(2.7332, abs=1e-3)  # (-28 + sqrt(1120)) / 2
    assert gaussian_radius(3, 40) == pytest.approx(1.6303, abs=1e-3)
    assert gaussian_radius(1, 1) > 0


def test_draw_gaussian_peak_and_border():
    hm = np.zeros((9, 9), np.float32)
    draw_gaussian(hm, (0, 8), 3)
    assert hm[8, 0] == 1.0 and hm.max() == 1.0
    assert hm[8, 3] > 0 and hm[8, 4] == 0  # radius 3
    before = hm.copy()
    draw_gaussian(hm, (0, 8), 1)  # max: a smaller blob never lowers values
    np.testing.assert_array_equal(hm, before)


def test_small_face_weight_steps():
    assert [small_face_weight(a) for a in (3, 4, 5, 10, 15, 20, 30, 40, 41)] == [0.1, 0.1, 15, 15, 10, 10, 5, 5, 1]


@pytest.mark.parametrize("origin", ["cell", "center"])
@pytest.mark.parametrize("seed", range(5))
def test_encode_decode_targets_roundtrip(seed, origin):
    rng = np.random.default_rng(seed)
    boxes, lms = random_faces(rng)
    t = encode(boxes, lms, (32, 40), landmark_origin=origin)
    got_boxes, got_lms, valid = decode_targets(t, landmark_origin=origin)
    order = np.lexsort((np.floor((boxes[:, 0] + boxes[:, 2]) / 2), np.floor((boxes[:, 1] + boxes[:, 3]) / 2)))
    np.testing.assert_allclose(got_boxes, boxes[order] * 4, atol=1e-3)
    np.testing.assert_allclose(got_lms, lms[order, :, :2] * 4, atol=1e-3)
    assert valid.all()
    assert t["heatmap"].max() == 1.0 and (t["heatmap"] == 1.0).sum() == len(boxes)
    assert t["reg_mask"].sum() == len(boxes)


def test_faces_without_landmarks_train_boxes_only():
    boxes = np.array([[2, 2, 12, 14], [20, 4, 30, 16]], np.float32)
    lms = np.zeros((2, 5, 3), np.float32)
    lms[1] = [[22, 6, 2], [28, 6, 2], [25, 10, 2], [23, 14, 0], [27, 14, 2]]
    t = encode(boxes, lms, (32, 40), source_area=np.array([120.0, 120.0]))
    assert t["ind"].sum() == 2
    assert t["hps_mask"][:, 8, 7].sum() == 0  # first face: no landmarks
    np.testing.assert_array_equal(t["hps_mask"][:, 10, 25], [1, 1, 1, 1, 1, 1, 0, 0, 1, 1])
    # tiny source box: landmarks masked even when labelled
    t = encode(boxes, lms, (32, 40), source_area=np.array([120.0, 8.0]))
    assert t["hps_mask"].sum() == 0


def test_clipped_and_outside_boxes():
    boxes = np.array([[-5, -5, 3, 3], [50, 50, 60, 60]], np.float32)  # partly outside / fully outside
    t = encode(boxes, np.zeros((2, 5, 3), np.float32), (32, 40))
    assert t["ind"].sum() == 1
    assert t["ind"][1, 1] == 1  # clipped to (0, 0, 3, 3), centre 1.5
    np.testing.assert_allclose(np.exp(t["size"][:, 1, 1]) * 4, [3, 3], atol=1e-5)
    assert t["weight"][0, 1, 1] == 15.0  # area 9


@pytest.mark.parametrize("origin", ["cell", "center"])
def test_encode_matches_real_decode(origin):
    """Targets fed to the project's decode as if they were network outputs recover boxes and landmarks within 1 px
    (random faces, both landmark origins the checkpoints use)."""
    from centerface_flow.inference import decode

    rng = np.random.default_rng(7)
    for _ in range(10):
        boxes, lms = random_faces(rng, out_hw=(32, 40), n=5, spacing=6)
        t = encode(boxes, lms, (32, 40), landmark_origin=origin)
        det = decode.peaks_and_decode(t["heatmap"], t["size"], t["offset"], t["landmarks"], k=50, stride=4,
                                      landmark_origin=origin)
        keep = det.scores > 0.99
        assert keep.sum() == len(boxes)
        got_boxes, got_lms = det.boxes[keep], det.landmarks[keep]
        for b, lm in zip(boxes * 4, lms[:, :, :2] * 4):
            i = np.argmin(np.abs(got_boxes - b).sum(1))
            np.testing.assert_allclose(got_boxes[i], b, atol=1.0)
            np.testing.assert_allclose(got_lms[i], lm, atol=1.0)


def test_min_side_ignores_small_faces_and_masks_their_region():
    boxes = np.array([[2, 2, 12, 14], [20, 4, 22.5, 7], [30, 20, 33, 30]], np.float32)  # sides 10x12, 2.5x3, 3x10
    lms = np.zeros((3, 5, 3), np.float32)
    t = encode(boxes, lms, (32, 40), min_side=3.0)
    assert t["ind"].sum() == 2 and t["ind"][8, 7] == 1 and t["ind"][25, 31] == 1  # the 2.5x3 face has no centre
    assert (t["heatmap"] == 1.0).sum() == 2
    np.testing.assert_array_equal(t["heatmap"][0, 4:8, 20:23], IGNORE)  # every cell its box touches
    assert (t["heatmap"] == IGNORE).sum() == 12 and t["heatmap"][0, 4, 23] == 0 and t["heatmap"][0, 8, 20] == 0
    assert t["size"][:, 5, 21].sum() == 0 and t["weight"][:, 5, 21].sum() == 0
    plain = encode(boxes, lms, (32, 40))  # default: every face trains, no ignored cells (model zoo)
    assert plain["ind"].sum() == 3 and plain["heatmap"].min() == 0.0


def test_ignored_region_keeps_gaussians_of_kept_faces():
    boxes = np.array([[4, 4, 14, 14], [8, 8, 9, 9]], np.float32)  # a 1x1 face inside a kept face's gaussian
    t = encode(boxes, np.zeros((2, 5, 3), np.float32), (32, 40), min_side=2.0)
    kept = encode(boxes[:1], np.zeros((1, 5, 3), np.float32), (32, 40))
    np.testing.assert_array_equal(t["heatmap"][0, 8:10, 8:10], np.where(kept["heatmap"][0, 8:10, 8:10] > 0,
                                                                         kept["heatmap"][0, 8:10, 8:10], IGNORE))
    assert t["ind"].sum() == 1


def test_small_face_weights_switch():
    boxes = np.array([[2, 2, 5, 5], [20, 4, 30, 16]], np.float32)  # areas 9 (x15) and 120 (x1)
    lms = np.zeros((2, 5, 3), np.float32)
    assert encode(boxes, lms, (32, 40))["weight"][0, 3, 3] == 15.0
    t = encode(boxes, lms, (32, 40), small_face_weights=False)
    assert t["weight"][0, 3, 3] == 1.0 and t["weight"][1, 10, 25] == 1.0 and t["weight"].sum() == 4.0
