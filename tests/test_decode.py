"""The numpy decoder: model-zoo target encoding -> decode recovers boxes and landmarks; peaks; empty shapes."""
from __future__ import annotations

import math

import numpy as np
import pytest

from centerface_flow.inference.decode import Detections, decode_cells, find_cells, find_peaks, peaks_and_decode

STRIDE = 4


def encode_like_model_zoo(boxes, points, out_hw, origin="cell"):
    """Targets as the model zoo's preprocess_train writes them (output-cell units), one face per cell."""
    h_out, w_out = out_hw
    hm = np.zeros((1, h_out, w_out), np.float32)
    wh = np.zeros((2, h_out, w_out), np.float32)
    off = np.zeros((2, h_out, w_out), np.float32)
    kps = np.zeros((10, h_out, w_out), np.float32)
    for i, (box, pts) in enumerate(zip(boxes, points)):
        b = np.asarray(box, np.float32) / STRIDE
        p = np.asarray(pts, np.float32) / STRIDE
        w, h = b[2] - b[0], b[3] - b[1]
        ct = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2], np.float32)
        ci = ct.astype(np.int32)
        hm[0, ci[1], ci[0]] = 0.9 - 0.1 * i
        wh[:, ci[1], ci[0]] = np.log(w / 4), np.log(h / 4)
        off[:, ci[1], ci[0]] = ct - ci
        anchor = ci if origin == "cell" else ct
        kps[0::2, ci[1], ci[0]] = (p[:, 0] - anchor[0]) / w
        kps[1::2, ci[1], ci[0]] = (p[:, 1] - anchor[1]) / h
    return hm, wh, off, kps


@pytest.mark.parametrize("origin", ["cell", "center"])
def test_encode_decode_round_trip(origin):
    boxes = np.array([[10.0, 20.0, 50.0, 70.0], [100.5, 30.25, 180.0, 140.0], [3.0, 90.0, 15.0, 104.0]], np.float32)
    rng = np.random.default_rng(0)
    points = np.stack([rng.uniform(b[:2], b[2:], size=(5, 2)) for b in boxes]).astype(np.float32)
    hm, wh, off, kps = encode_like_model_zoo(boxes, points, (48, 64), origin=origin)
    det = peaks_and_decode(hm, wh, off, kps, k=10, stride=STRIDE, threshold=0.01, landmark_origin=origin)
    assert len(det) == 3
    np.testing.assert_allclose(det.scores, [0.9, 0.8, 0.7], rtol=1e-6)
    np.testing.assert_allclose(det.boxes, boxes, atol=1e-3)
    np.testing.assert_allclose(det.landmarks, points, atol=1e-3)
    assert det.boxes.dtype == np.float32 and det.landmarks.shape == (3, 5, 2)


def test_size_channel_units():
    # one face, size channels log(w / 16), log(h / 16) in input pixels: w = 64 -> log 4, h = 32 -> log 2
    hm = np.zeros((1, 8, 8), np.float32)
    hm[0, 3, 5] = 0.8
    wh = np.zeros((2, 8, 8), np.float32)
    wh[:, 3, 5] = math.log(4), math.log(2)
    off = np.zeros((2, 8, 8), np.float32)
    off[:, 3, 5] = 0.25, 0.5
    det = peaks_and_decode(hm, wh, off, np.zeros((10, 8, 8), np.float32), threshold=0.0)
    cx, cy = 4 * 5.25, 4 * 3.5
    np.testing.assert_allclose(det.boxes[0], [cx - 32, cy - 16, cx + 32, cy + 16], atol=1e-4)
    np.testing.assert_array_equal(det.cells, [[3, 5]])
    # landmarks with zero relative offset sit at the cell corner ("cell") or at the box centre ("center")
    np.testing.assert_allclose(det.landmarks[0], np.tile([20.0, 12.0], (5, 1)))
    det_c = decode_cells([3], [5], hm, wh, off, np.zeros((10, 8, 8), np.float32), landmark_origin="center")
    np.testing.assert_allclose(det_c.landmarks[0], np.tile([cx, cy], (5, 1)))


def test_peaks_are_local_maxima_topk_and_threshold():
    hm = np.zeros((1, 6, 6), np.float32)
    hm[0, 1, 1] = 0.9
    hm[0, 1, 2] = 0.5  # neighbour of a higher cell: not a peak
    hm[0, 4, 4] = 0.6
    hm[0, 0, 5] = 0.6  # tie with (4, 4): row-major order keeps (0, 5) first
    rows, cols = find_peaks(hm, k=10)
    assert list(zip(rows.tolist(), cols.tolist())) == [(1, 1), (0, 5), (4, 4)] + [
        (r, c) for r, c in zip(rows[3:].tolist(), cols[3:].tolist())
    ]
    assert all(hm[0, r, c] == 0 for r, c in zip(rows[3:], cols[3:]))  # flat zero plateaus are peaks too
    rows, cols = find_peaks(hm, k=2)
    assert list(zip(rows.tolist(), cols.tolist())) == [(1, 1), (0, 5)]
    rows, cols = find_peaks(hm, k=10, threshold=0.6)
    assert list(zip(rows.tolist(), cols.tolist())) == [(1, 1)]


def test_empty_results_have_fixed_shapes():
    z = np.zeros
    det = peaks_and_decode(z((1, 4, 4), np.float32), z((2, 4, 4), np.float32), z((2, 4, 4), np.float32),
                           z((10, 4, 4), np.float32), threshold=0.5)
    assert isinstance(det, Detections) and len(det) == 0
    assert det.boxes.shape == (0, 4) and det.scores.shape == (0,) and det.landmarks.shape == (0, 5, 2)
    assert det.cells.shape == (0, 2)
    assert peaks_and_decode(z((1, 4, 4)), z((2, 4, 4)), z((2, 4, 4)), z((10, 4, 4)), k=0).boxes.shape == (0, 4)


def test_shape_and_origin_validation():
    z = np.zeros
    with pytest.raises(ValueError, match="landmarks"):
        peaks_and_decode(z((1, 4, 4)), z((2, 4, 4)), z((2, 4, 4)), z((8, 4, 4)))
    with pytest.raises(ValueError, match="heatmap"):
        peaks_and_decode(z((4, 4)), z((2, 4, 4)), z((2, 4, 4)), z((10, 4, 4)))
    with pytest.raises(ValueError, match="landmark_origin"):
        decode_cells([0], [0], z((1, 4, 4)), z((2, 4, 4)), z((2, 4, 4)), z((10, 4, 4)), landmark_origin="corner")


def test_find_cells_keeps_every_cell_at_or_above_the_floor_best_first():
    hm = np.zeros((1, 4, 5), np.float32)
    hm[0, 1, 1], hm[0, 1, 2], hm[0, 3, 4], hm[0, 0, 0] = 0.9, 0.5, 0.5, 0.01
    rows, cols = find_cells(hm, 0.01)
    # neighbours of a stronger cell are kept too (a 3x3 peak filter would drop (1, 2)); ties in row-major order
    assert list(zip(rows.tolist(), cols.tolist())) == [(1, 1), (1, 2), (3, 4), (0, 0)]
    assert find_cells(hm, 0.6)[0].tolist() == [1]
    assert find_cells(np.zeros((1, 3, 3), np.float32), 0.01)[0].shape == (0,)


def test_clamped_decoding_shifts_boxes_at_the_top_left_and_cuts_at_the_bottom_right():
    # released-model conventions (landmark origin = box centre): a 40x40 face centred at (8, 100) in a 64x128 input
    # (height 128, width 64) crosses the left border; one centred at (60, 120) crosses right and bottom.
    hm = np.zeros((1, 32, 16), np.float32)
    wh = np.full((2, 32, 16), math.log(40 / 16), np.float32)
    off = np.zeros((2, 32, 16), np.float32)
    kps = np.zeros((10, 32, 16), np.float32)
    kps[0::2], kps[1::2] = -0.25, 0.1  # every landmark at centre + (-10, +4)
    rows, cols = np.array([25, 30]), np.array([2, 15])
    det = decode_cells(rows, cols, hm, wh, off, kps, landmark_origin="center", clamp_to=(128, 64))
    # left face: unclamped x1 = 8 - 20 = -12 -> 0, the box keeps its 40 px width: x2 = 40; landmarks move +12
    np.testing.assert_allclose(det.boxes[0], [0, 80, 40, 120], atol=1e-4)
    np.testing.assert_allclose(det.landmarks[0], np.tile([8 - 10 + 12, 100 + 4], (5, 1)), atol=1e-4)
    # right/bottom face: corner (40, 100) inside, far sides cut at the border; landmarks unchanged
    np.testing.assert_allclose(det.boxes[1], [40, 100, 64, 128], atol=1e-4)
    np.testing.assert_allclose(det.landmarks[1], np.tile([50, 124], (5, 1)), atol=1e-4)
    unclamped = decode_cells(rows, cols, hm, wh, off, kps, landmark_origin="center")
    np.testing.assert_allclose(unclamped.boxes[0], [-12, 80, 28, 120], atol=1e-4)
