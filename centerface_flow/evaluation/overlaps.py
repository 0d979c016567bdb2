"""Box overlaps and detection-to-face matching: numpy twins of the Cython kernels in ``kernels/box_overlaps.pyx``.

The public functions call the compiled kernels; the ``*_numpy`` twins define the same semantics in plain numpy and
the tests check that both agree bit for bit.

Matching rules (detections of an image are visited in the given order, which the evaluator makes descending score):

``python``
    The Python port's ``image_eval``: IoU with the ``+1`` pixel convention in float64
    (``iw = min(x2) - max(x1) + 1``, union ``= det_area + face_area - iw * ih``); the detection's face is the one
    with the largest IoU (first on ties), matched if that IoU >= ``iou``.
``official``
    The MATLAB ``eval_tools`` (``boxoverlap.m`` called with the int32 faces of ``wider_face_val.mat``). MATLAB
    evaluates int32-with-double arithmetic in double and rounds the result to int32 (half away from zero), so the
    detection corners are rounded, the union is ``round(face_area + det_area) - inter`` and the IoU itself is
    rounded to an integer: 0 below 0.5, 1 from 0.5 (larger for degenerate sub-pixel detections). ``max`` then picks
    the first face with the largest rounded value, and ``>= 0.5`` means "rounded IoU >= 1". For another threshold
    ``t`` the rounded value of an IoU ``>= t`` is ``max(1, round(IoU))`` and 0 below ``t`` (exactly MATLAB at 0.5).
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "box_overlaps",
    "box_overlaps_numpy",
    "match",
    "match_official_numpy",
    "match_python_numpy",
]


def box_overlaps(boxes: np.ndarray, query_boxes: np.ndarray) -> np.ndarray:
    """IoU matrix with the ``+1`` convention (Cython).

    boxes: (N, 4) xyxy, query_boxes: (K, 4) xyxy -> (N, K) float64.
    """
    from centerface_flow._kernels.box_overlaps import box_overlaps as kernel

    return kernel(np.ascontiguousarray(boxes, dtype=np.float64), np.ascontiguousarray(query_boxes, dtype=np.float64))


def box_overlaps_numpy(boxes: np.ndarray, query_boxes: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`box_overlaps`. boxes: (N, 4) xyxy, query_boxes: (K, 4) xyxy -> (N, K) float64."""
    b = np.asarray(boxes, dtype=np.float64)[:, None, :]
    q = np.asarray(query_boxes, dtype=np.float64)[None, :, :]
    query_area = (q[..., 2] - q[..., 0] + 1) * (q[..., 3] - q[..., 1] + 1)
    iw = np.minimum(b[..., 2], q[..., 2]) - np.maximum(b[..., 0], q[..., 0]) + 1
    ih = np.minimum(b[..., 3], q[..., 3]) - np.maximum(b[..., 1], q[..., 1]) + 1
    inter = iw * ih
    union = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1) + query_area - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        ov = inter / union
    return np.where((iw > 0) & (ih > 0), ov, 0.0)


def match(
    protocol: str,
    dets: np.ndarray,
    det_offsets: np.ndarray,
    faces: np.ndarray,
    face_offsets: np.ndarray,
    iou: float,
) -> np.ndarray:
    """Match every detection to a face (Cython).

    dets: (R, 4) float64 xywh grouped by image, in matching order; det_offsets: (n + 1,) intp;
    faces: (G, 4) int32 xywh grouped by image; face_offsets: (n + 1,) intp.
    Returns (R,) intp: global face row of the matched face, -1 if unmatched.
    """
    from centerface_flow._kernels import box_overlaps as kernels

    dets = np.ascontiguousarray(dets, dtype=np.float64)
    det_offsets = np.ascontiguousarray(det_offsets, dtype=np.intp)
    face_offsets = np.ascontiguousarray(face_offsets, dtype=np.intp)
    if protocol == "python":
        return kernels.match_python(dets, det_offsets, np.ascontiguousarray(faces, dtype=np.float64), face_offsets, iou)
    if protocol == "official":
        return kernels.match_official(dets, det_offsets, np.ascontiguousarray(faces, dtype=np.int32), face_offsets, iou)
    raise ValueError(f"unknown protocol {protocol!r}")


def _xyxy(xywh: np.ndarray) -> np.ndarray:
    out = np.array(xywh, dtype=np.float64, copy=True)
    out[:, 2] = out[:, 2] + out[:, 0]
    out[:, 3] = out[:, 3] + out[:, 1]
    return out


def match_python_numpy(dets, det_offsets, faces, face_offsets, iou: float) -> np.ndarray:
    """Numpy twin of the ``python`` rule of :func:`match` (same arguments and result)."""
    best = np.full(len(dets), -1, dtype=np.intp)
    for i in range(len(det_offsets) - 1):
        d0, d1, f0, f1 = det_offsets[i], det_offsets[i + 1], face_offsets[i], face_offsets[i + 1]
        if d1 == d0 or f1 == f0:
            continue
        ov = box_overlaps_numpy(_xyxy(dets[d0:d1]), _xyxy(faces[f0:f1]))
        arg = ov.argmax(axis=1)
        hit = ov[np.arange(d1 - d0), arg] >= iou
        best[d0:d1][hit] = f0 + arg[hit]
    return best


def _to_int32(values: np.ndarray) -> np.ndarray:
    """MATLAB double -> int32: round half away from zero, saturate, NaN -> 0. Returns int64."""
    values = np.asarray(values, dtype=np.float64)
    whole = np.trunc(values)
    with np.errstate(invalid="ignore"):  # inf - inf
        rounded = whole + np.where(np.abs(values - whole) >= 0.5, np.sign(values), 0.0)  # v - trunc(v) is exact
    rounded = np.where(np.isnan(values), 0.0, rounded)
    return np.clip(rounded, -2147483648.0, 2147483647.0).astype(np.int64)


def match_official_numpy(dets, det_offsets, faces, face_offsets, iou: float) -> np.ndarray:
    """Numpy twin of the ``official`` rule of :func:`match` (same arguments and result)."""
    best = np.full(len(dets), -1, dtype=np.intp)
    faces = np.asarray(faces, dtype=np.int64)
    for i in range(len(det_offsets) - 1):
        d0, d1, f0, f1 = det_offsets[i], det_offsets[i + 1], face_offsets[i], face_offsets[i + 1]
        if d1 == d0 or f1 == f0:
            continue
        b = np.asarray(dets[d0:d1], dtype=np.float64)
        bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
        r = [_to_int32(v)[:, None] for v in (b[:, 0], b[:, 1], bx2, by2)]
        det_area = ((bx2 - b[:, 0] + 1) * (by2 - b[:, 1] + 1))[:, None]
        g = faces[f0:f1]
        gx1, gy1 = g[:, 0][None], g[:, 1][None]
        gx2, gy2 = gx1 + g[:, 2][None], gy1 + g[:, 3][None]
        iw = np.minimum(gx2, r[2]) - np.maximum(gx1, r[0]) + 1
        ih = np.minimum(gy2, r[3]) - np.maximum(gy1, r[1]) + 1
        inter = iw * ih
        union = _to_int32((gx2 - gx1 + 1) * (gy2 - gy1 + 1) + det_area) - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = inter / union.astype(np.float64)
        o = np.where((iw > 0) & (ih > 0) & (ratio >= iou), np.maximum(_to_int32(ratio), 1), 0)
        arg = o.argmax(axis=1)
        hit = o[np.arange(d1 - d0), arg] >= 1
        best[d0:d1][hit] = f0 + arg[hit]
    return best
