# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Box overlaps and per-image detection-to-face matching for the WIDER FACE evaluation.

The numpy twins live in ``centerface_flow.evaluation.overlaps``; ``tests/test_evaluation_kernels.py`` checks that
both agree. Semantics (documented in detail in that module):

* ``box_overlaps``: IoU of xyxy boxes with the ``+1`` pixel convention of the WIDER tools (width = x2 - x1 + 1).
* ``match_python``: for every detection, the face with the largest float IoU (first one on ties); the
  detection is matched when that IoU >= ``iou``. This is the rule of the widely used Python port.
* ``match_official``: the MATLAB ``eval_tools`` rule. Faces are int32 there, so MATLAB's mixed int32/double
  arithmetic rounds (half away from zero) the detection corners, the union and finally the IoU itself to int32.
  The matched face is the first face with the largest *rounded* IoU, matched when the rounded IoU is >= 1,
  i.e. IoU >= 0.5. For another threshold ``t`` we keep that rule with the test ``IoU >= t`` in place of the
  rounding test (identical at ``t = 0.5``).

Detections and faces of all images are concatenated; ``*_offsets`` (n_images + 1,) give each image's row range.
Detections must already be in the order in which they are matched (by descending score).
"""
import numpy as np

cimport numpy as cnp
from libc.math cimport round as c_round, isnan

cnp.import_array()


def box_overlaps(const double[:, ::1] boxes, const double[:, ::1] query_boxes):
    """IoU matrix with the ``+1`` convention.

    Parameters
    ----------
    boxes : (N, 4) float64 xyxy
    query_boxes : (K, 4) float64 xyxy

    Returns
    -------
    overlaps : (N, K) float64; 0 where the boxes do not intersect
    """
    cdef Py_ssize_t n_boxes = boxes.shape[0], n_query = query_boxes.shape[0], n, k
    out = np.zeros((n_boxes, n_query), dtype=np.float64)
    cdef double[:, ::1] ov = out
    cdef double iw, ih, query_area, union
    for k in range(n_query):
        query_area = (query_boxes[k, 2] - query_boxes[k, 0] + 1) * (query_boxes[k, 3] - query_boxes[k, 1] + 1)
        for n in range(n_boxes):
            iw = min(boxes[n, 2], query_boxes[k, 2]) - max(boxes[n, 0], query_boxes[k, 0]) + 1
            if iw > 0:
                ih = min(boxes[n, 3], query_boxes[k, 3]) - max(boxes[n, 1], query_boxes[k, 1]) + 1
                if ih > 0:
                    union = (boxes[n, 2] - boxes[n, 0] + 1) * (boxes[n, 3] - boxes[n, 1] + 1) + query_area - iw * ih
                    ov[n, k] = iw * ih / union
    return out


def match_python(
    const double[:, ::1] dets,
    const Py_ssize_t[::1] det_offsets,
    const double[:, ::1] faces,
    const Py_ssize_t[::1] face_offsets,
    double iou,
):
    """Best-IoU matching of the Python port.

    Parameters
    ----------
    dets : (R, 4) float64 xywh, grouped by image, matching order within an image
    det_offsets : (n_images + 1,) intp
    faces : (G, 4) float64 xywh, grouped by image
    face_offsets : (n_images + 1,) intp
    iou : match threshold

    Returns
    -------
    best : (R,) intp, global face row of the matched face, -1 when unmatched (or the image has no faces)
    """
    cdef Py_ssize_t n_images = det_offsets.shape[0] - 1, i, r, g, best_g
    out = np.full(dets.shape[0], -1, dtype=np.intp)
    cdef Py_ssize_t[::1] best = out
    cdef double dx1, dy1, dx2, dy2, gx1, gy1, gx2, gy2, iw, ih, ov, best_ov, face_area
    for i in range(n_images):
        for r in range(det_offsets[i], det_offsets[i + 1]):
            dx1 = dets[r, 0]
            dy1 = dets[r, 1]
            dx2 = dets[r, 2] + dx1
            dy2 = dets[r, 3] + dy1
            best_ov = -1.0
            best_g = -1
            for g in range(face_offsets[i], face_offsets[i + 1]):
                gx1 = faces[g, 0]
                gy1 = faces[g, 1]
                gx2 = faces[g, 2] + gx1
                gy2 = faces[g, 3] + gy1
                ov = 0.0
                iw = min(dx2, gx2) - max(dx1, gx1) + 1
                if iw > 0:
                    ih = min(dy2, gy2) - max(dy1, gy1) + 1
                    if ih > 0:
                        face_area = (gx2 - gx1 + 1) * (gy2 - gy1 + 1)
                        ov = iw * ih / ((dx2 - dx1 + 1) * (dy2 - dy1 + 1) + face_area - iw * ih)
                if ov > best_ov:
                    best_ov = ov
                    best_g = g
            if best_g >= 0 and best_ov >= iou:
                best[r] = best_g
    return out


cdef inline long long to_int32(double value) noexcept nogil:
    """MATLAB's double -> int32 conversion: round half away from zero, saturate, NaN -> 0."""
    if isnan(value):
        return 0
    value = c_round(value)
    if value > 2147483647.0:
        return 2147483647
    if value < -2147483648.0:
        return -2147483648
    return <long long>value


def match_official(
    const double[:, ::1] dets,
    const Py_ssize_t[::1] det_offsets,
    const int[:, ::1] faces,
    const Py_ssize_t[::1] face_offsets,
    double iou,
):
    """Matching of the MATLAB ``eval_tools`` (``boxoverlap.m`` on int32 faces + ``max``).

    Parameters
    ----------
    dets : (R, 4) float64 xywh, grouped by image, sorted by descending score within an image
    det_offsets : (n_images + 1,) intp
    faces : (G, 4) int32 xywh, grouped by image
    face_offsets : (n_images + 1,) intp
    iou : match threshold (0.5 reproduces MATLAB exactly)

    Returns
    -------
    best : (R,) intp, global face row of the matched face, -1 when unmatched (or the image has no faces)
    """
    cdef Py_ssize_t n_images = det_offsets.shape[0] - 1, i, r, g, best_g
    out = np.full(dets.shape[0], -1, dtype=np.intp)
    cdef Py_ssize_t[::1] best = out
    cdef double bx1, by1, bx2, by2, det_area, ratio
    cdef long long rx1, ry1, rx2, ry2, gx1, gy1, gx2, gy2, iw, ih, inter, union, face_area, o, best_o
    for i in range(n_images):
        for r in range(det_offsets[i], det_offsets[i + 1]):
            bx1 = dets[r, 0]
            by1 = dets[r, 1]
            bx2 = bx1 + dets[r, 2]
            by2 = by1 + dets[r, 3]
            rx1 = to_int32(bx1)
            ry1 = to_int32(by1)
            rx2 = to_int32(bx2)
            ry2 = to_int32(by2)
            det_area = (bx2 - bx1 + 1) * (by2 - by1 + 1)
            best_o = -1
            best_g = -1
            for g in range(face_offsets[i], face_offsets[i + 1]):
                gx1 = faces[g, 0]
                gy1 = faces[g, 1]
                gx2 = gx1 + faces[g, 2]
                gy2 = gy1 + faces[g, 3]
                iw = min(gx2, rx2) - max(gx1, rx1) + 1
                ih = min(gy2, ry2) - max(gy1, ry1) + 1
                o = 0
                if iw > 0 and ih > 0:
                    inter = iw * ih
                    face_area = (gx2 - gx1 + 1) * (gy2 - gy1 + 1)
                    union = to_int32(<double>face_area + det_area) - inter
                    ratio = <double>inter / <double>union
                    if ratio >= iou:
                        o = max(to_int32(ratio), 1)
                if o > best_o:
                    best_o = o
                    best_g = g
            if best_g >= 0 and best_o >= 1:
                best[r] = best_g
    return out
