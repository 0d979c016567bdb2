"""The Cython kernels of the evaluation (overlaps, matching, prediction-file parser) against their numpy twins
and hand-checked values."""
from __future__ import annotations

import numpy as np
import pytest
from centerface_flow._kernels.wider_parse import parse_prediction

from centerface_flow.evaluation.overlaps import (
    _to_int32,
    box_overlaps,
    box_overlaps_numpy,
    match,
    match_official_numpy,
    match_python_numpy,
)


def random_xyxy(rng, n, scale=50.0):
    xy = rng.uniform(-5, scale, (n, 2))
    wh = rng.uniform(0, scale / 2, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    return np.round(boxes, rng.integers(0, 3))  # integer and sub-pixel corners, many exact ties


@pytest.mark.parametrize("n,k", [(0, 0), (0, 3), (4, 0), (1, 1), (30, 17)])
def test_box_overlaps_cython_equals_numpy(n, k):
    rng = np.random.default_rng(n * 100 + k)
    a, b = random_xyxy(rng, n), random_xyxy(rng, k)
    got = box_overlaps(a, b)
    assert got.shape == (n, k) and got.dtype == np.float64
    np.testing.assert_array_equal(got, box_overlaps_numpy(a, b))


def test_box_overlaps_known_values():
    a = np.array([[0, 0, 9, 9]], dtype=np.float64)  # 10 x 10 with the +1 convention
    b = np.array([[0, 0, 9, 9], [5, 0, 14, 9], [10, 0, 19, 9], [0, 0, 4, 9]], dtype=np.float64)
    np.testing.assert_allclose(box_overlaps(a, b), [[1.0, 50 / 150, 0.0, 0.5]])
    # identical boxes with a tie in the query: both 1
    np.testing.assert_array_equal(box_overlaps(b[:1], np.repeat(a, 2, axis=0)), [[1.0, 1.0]])


def test_to_int32_matches_matlab():
    # values checked in GNU Octave 7.3: int32(2.5) = 3, int32(-2.5) = -3, int32(NaN) = 0, int32(Inf) = intmax
    values = np.array([2.5, -2.5, 0.49999999999999994, 0.5, 1.4999999999999998, -0.5, np.nan, np.inf, -np.inf, 7.0])
    np.testing.assert_array_equal(_to_int32(values), [3, -3, 0, 1, 1, -1, 0, 2147483647, -2147483648, 7])


def random_case(seed, n_images=12):
    """Random detections (xywh float64) and faces (xywh int32) per image, including sub-pixel and .5 corners."""
    rng = np.random.default_rng(seed)
    n_faces = rng.integers(0, 8, n_images)
    n_dets = rng.integers(0, 10, n_images)
    faces = np.concatenate([rng.integers(0, 40, (n_faces.sum(), 2)), rng.integers(-1, 25, (n_faces.sum(), 2))], 1)
    face_offsets = np.concatenate([[0], np.cumsum(n_faces)]).astype(np.intp)
    dets = []
    for i in range(n_images):
        own = faces[face_offsets[i]:face_offsets[i + 1]].astype(np.float64)
        d = rng.uniform(0, 40, (n_dets[i], 4))
        d[:, 2:] = rng.uniform(0, 25, (n_dets[i], 2))
        if len(own):  # half of them near a face, rounded to halves to hit the rounding boundaries
            near = rng.random(n_dets[i]) < 0.5
            pick = rng.integers(0, len(own), n_dets[i])
            d[near] = own[pick[near]] + rng.normal(0, 2, (int(near.sum()), 4))
            d[:, 2:] = np.abs(d[:, 2:])
        d[rng.random(n_dets[i]) < 0.3] *= 0.05  # tiny sub-pixel boxes
        dets.append(np.round(d * 2) / 2 if seed % 2 else d)
    det_offsets = np.concatenate([[0], np.cumsum(n_dets)]).astype(np.intp)
    return np.concatenate(dets), det_offsets, faces.astype(np.int32), face_offsets


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("iou", [0.5, 0.4, 0.7])
def test_match_cython_equals_numpy(seed, iou):
    dets, det_offsets, faces, face_offsets = random_case(seed)
    got_py = match("python", dets, det_offsets, faces, face_offsets, iou)
    got_off = match("official", dets, det_offsets, faces, face_offsets, iou)
    np.testing.assert_array_equal(got_py, match_python_numpy(dets, det_offsets, faces, face_offsets, iou))
    np.testing.assert_array_equal(got_off, match_official_numpy(dets, det_offsets, faces, face_offsets, iou))
    assert got_py.dtype == np.intp and (got_py >= 0).any()


def test_match_empty_inputs():
    empty = np.zeros((0, 4))
    offsets = np.zeros(1, dtype=np.intp)
    for protocol in ("python", "official"):
        assert match(protocol, empty, offsets, np.zeros((0, 4), np.int32), offsets, 0.5).shape == (0,)
    # detections in an image without faces are never matched
    dets = np.array([[0.0, 0, 10, 10]])
    got = match("official", dets, np.array([0, 1], np.intp), np.zeros((0, 4), np.int32), np.array([0, 0], np.intp), 0.5)
    np.testing.assert_array_equal(got, [-1])


def test_official_rule_picks_first_face_python_picks_best():
    faces = np.array([[0, 0, 10, 10], [1, 0, 10, 10]], dtype=np.int32)  # IoU with the detection: 0.83 and 1.0
    dets = np.array([[1.0, 0.0, 10.0, 10.0]])
    offsets = np.array([0, 1], np.intp), np.array([0, 2], np.intp)
    assert match("python", dets, offsets[0], faces, offsets[1], 0.5)[0] == 1
    # MATLAB rounds both IoUs to int32(1) and max() returns the first
    assert match("official", dets, offsets[0], faces, offsets[1], 0.5)[0] == 0


def test_official_rounds_the_detection_box():
    face = np.array([[10, 10, 9, 9]], dtype=np.int32)  # x 10..19, y 10..19
    offsets = np.array([0, 1], np.intp)
    det = np.array([[14.5, 10.0, 10.0, 10.0]])  # x 14.5..24.5, y 10..20
    # official: corners round to 15 and 25 (half away from zero): inter 5 * 10 = 50,
    # union round(100 + 11 * 11) - 50 = 171, IoU 0.2924
    assert match("official", det, offsets, face, offsets, 0.29)[0] == 0
    assert match("official", det, offsets, face, offsets, 0.30)[0] == -1
    # python: iw = 19 - 14.5 + 1 = 5.5, inter 55, union 121 + 100 - 55 = 166, IoU 0.3313
    assert match("python", det, offsets, face, offsets, 0.33)[0] == 0
    assert match("python", det, offsets, face, offsets, 0.34)[0] == -1


def test_parse_prediction_valid():
    name, rows = parse_prediction(b"0--Parade/a.jpg\r\n2\r\n1 2 3 4 0.5\r\n\t5  6 7 8 .25 \n\n  \n")
    assert name == "0--Parade/a.jpg"
    np.testing.assert_array_equal(rows, [[1, 2, 3, 4, 0.5], [5, 6, 7, 8, 0.25]])
    assert parse_prediction(b"")[1].shape == (0, 5)
    assert parse_prediction(b" \n\n")[0] is None
    assert parse_prediction(b"a\n0\n")[1].shape == (0, 5)
    # the same float64 as Python's float()
    text = "0.1 0.30000000000000004 1e-3 7.000000000000001 0.123456789012345678"
    np.testing.assert_array_equal(parse_prediction(f"a\n1\n{text}\n".encode())[1][0], [float(v) for v in text.split()])


@pytest.mark.parametrize("data,line,words", [
    (b"a", 2, "missing the detection count"),
    (b"a\n\n", 2, "empty line"),
    (b"a\nx\n", 2, "non-negative integer"),
    (b"a\n-1\n", 2, "non-negative integer"),
    (b"a\n1.0\n1 2 3 4 5\n", 2, "non-negative integer"),
    (b"a\n99999999999\n1 2 3 4 5\n", 2, "larger than the file"),
    (b"a\n2\n1 2 3 4 5\n", 4, "says 2 detections but the file has 1 rows"),
    (b"a\n1\n1 2 3 4 5\n1 2 3 4 5\n", 4, "more rows follow"),
    (b"a\n2\n\n1 2 3 4 5\n", 3, "empty row"),
    (b"a\n1\n1 2 3 4\n", 3, "found 4"),
    (b"a\n1\n1 2 3 4 5 6\n", 3, "found more"),
    (b"a\n1\n1 2 x 4 5\n", 3, "not a number in column 3"),
    (b"a\n1\n1 2 3a 4 5\n", 3, "not a number in column 3"),
    (b"a\n1\n1 2 -3 4 5\n", 3, "negative width"),
    (b"a\n1\n1 2 3 -0.5 5\n", 3, "negative height"),
    (b"a\n1\n1 2 3 4 nan\n", 3, "score is NaN"),
    (b"a\n1\n1 2 inf 4 0.5\n", 3, "not finite"),
])
def test_parse_prediction_errors(data, line, words):
    with pytest.raises(ValueError, match=f"^line {line}: .*{words}"):
        parse_prediction(data)
