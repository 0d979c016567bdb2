# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Greedy non-maximum suppression kernels for one image: ``soft_nms`` (soft-linear, soft-gaussian) and
``hard_nms_vote`` (hard, optionally with box voting).

The numpy twins are ``soft_nms_numpy`` and ``hard_nms_vote_numpy`` in ``centerface_flow.postprocess.nms``;
``tests/test_nms.py`` checks that each kernel agrees with its twin.
Semantics (shared with the twin, documented in ``centerface_flow.postprocess.nms``):

* repeatedly select the highest-scoring remaining box (ties: lowest input index), then update every other
  remaining box ``j`` by its IoU ``ov`` with the selected box (areas and intersections use ``+ offset``, 1 for the
  model zoo's pixel convention):
  hard: drop ``j`` if ``ov > iou_threshold``; linear: ``s_j *= 1 - ov`` if ``ov > iou_threshold``;
  gaussian: ``s_j *= exp(-ov**2 / sigma)``;
* after soft decay, drop ``j`` if ``s_j < final_threshold``. Selected boxes are never dropped.
"""
import numpy as np

cimport numpy as cnp
from libc.math cimport exp

cnp.import_array()

cdef enum:
    HARD = 0
    LINEAR = 1
    GAUSSIAN = 2


def soft_nms(
    const float[:, ::1] boxes,
    const float[::1] scores,
    int method,
    double iou_threshold,
    double sigma,
    double final_threshold,
    double offset,
):
    """Greedy soft-NMS (hard NMS is :func:`hard_nms_vote`).

    Parameters
    ----------
    boxes : (N, 4) float32 C-contiguous, xyxy
    scores : (N,) float32
    method : 1 linear, 2 gaussian
    iou_threshold, sigma, final_threshold, offset : see the module docstring

    Returns
    -------
    keep : (M,) intp, input indices in selection order (non-increasing final score)
    kept_scores : (M,) float32, the scores after decay
    """
    cdef Py_ssize_t n = boxes.shape[0]
    if scores.shape[0] != n:
        raise ValueError(f"boxes has {n} rows but scores has {scores.shape[0]}")
    if method == HARD:
        raise ValueError("hard NMS is hard_nms_vote(); soft_nms() decays scores (linear, gaussian)")
    if method < HARD or method > GAUSSIAN:
        raise ValueError(f"unknown NMS method code {method}")
    cdef double[::1] x1 = np.empty(n, dtype=np.float64)
    cdef double[::1] y1 = np.empty(n, dtype=np.float64)
    cdef double[::1] x2 = np.empty(n, dtype=np.float64)
    cdef double[::1] y2 = np.empty(n, dtype=np.float64)
    cdef double[::1] area = np.empty(n, dtype=np.float64)
    cdef double[::1] s = np.empty(n, dtype=np.float64)
    cdef Py_ssize_t[::1] active = np.empty(n, dtype=np.intp)
    keep_arr = np.empty(n, dtype=np.intp)
    kept_arr = np.empty(n, dtype=np.float32)
    cdef Py_ssize_t[::1] keep = keep_arr
    cdef float[::1] kept = kept_arr
    cdef Py_ssize_t i, j, k, best_k, best, n_active = n, n_keep = 0
    cdef double best_s, iw, ih, inter, ov, weight, bx1, by1, bx2, by2, barea

    with nogil:
        for i in range(n):
            x1[i] = boxes[i, 0]
            y1[i] = boxes[i, 1]
            x2[i] = boxes[i, 2]
            y2[i] = boxes[i, 3]
            area[i] = (x2[i] - x1[i] + offset) * (y2[i] - y1[i] + offset)
            s[i] = scores[i]
            active[i] = i
        while n_active > 0:
            best_k = 0
            best = active[0]
            best_s = s[best]
            for k in range(1, n_active):
                j = active[k]
                if s[j] > best_s or (s[j] == best_s and j < best):
                    best_k = k
                    best = j
                    best_s = s[j]
            keep[n_keep] = best
            kept[n_keep] = <float>best_s
            n_keep += 1
            n_active -= 1
            active[best_k] = active[n_active]
            bx1 = x1[best]
            by1 = y1[best]
            bx2 = x2[best]
            by2 = y2[best]
            barea = area[best]
            k = 0
            while k < n_active:
                j = active[k]
                iw = min(bx2, x2[j]) - max(bx1, x1[j]) + offset
                if iw > 0:
                    ih = min(by2, y2[j]) - max(by1, y1[j]) + offset
                    if ih > 0:
                        inter = iw * ih
                        ov = inter / (barea + area[j] - inter)
                        if method == LINEAR:
                            weight = 1.0 - ov if ov > iou_threshold else 1.0
                        else:
                            weight = exp(-(ov * ov) / sigma)
                        s[j] = s[j] * weight
                        if s[j] < final_threshold:
                            n_active -= 1
                            active[k] = active[n_active]
                            continue
                k += 1
    return keep_arr[:n_keep].copy(), kept_arr[:n_keep].copy()


def hard_nms_vote(
    const float[:, ::1] boxes,
    const float[::1] scores,
    double iou_threshold,
    double offset,
    bint vote=True,
):
    """Hard NMS, optionally with box voting: each kept box becomes the score-weighted mean of itself and of the
    boxes it suppressed (``ov > iou_threshold``, areas with ``+ offset``). Kept indices and their order are those of
    ``soft_nms_numpy(..., method="hard")``: the highest score first, ties to the lowest index.

    Boxes are bucketed on a uniform grid so that a kept box is compared only with boxes sharing a grid cell with it
    (two boxes can overlap only then): a crowd image with tens of thousands of heatmap-cell candidates costs about
    the number of candidates near each kept box, not all of them.

    Returns
    -------
    keep : (M,) intp, input indices in selection order
    voted : (M, 4) float32, the voted boxes (the kept boxes themselves when ``vote`` is false)
    """
    cdef Py_ssize_t n = boxes.shape[0]
    if scores.shape[0] != n:
        raise ValueError(f"boxes has {n} rows but scores has {scores.shape[0]}")
    keep_arr = np.empty(n, dtype=np.intp)
    voted_arr = np.empty((n, 4), dtype=np.float32)
    if n == 0:
        return keep_arr, voted_arr
    b_np = np.asarray(boxes, dtype=np.float64)
    order_arr = np.lexsort((np.arange(n), -np.asarray(scores, dtype=np.float64))).astype(np.intp)
    rank_arr = np.empty(n, dtype=np.intp)
    rank_arr[order_arr] = np.arange(n, dtype=np.intp)
    # grid: cells about twice the median box side, at most ~64k cells
    lo_x, lo_y = float(b_np[:, 0].min()), float(b_np[:, 1].min())
    hi_x, hi_y = float(b_np[:, 2].max()) + offset, float(b_np[:, 3].max()) + offset
    side = np.median(np.maximum(b_np[:, 2] - b_np[:, 0], b_np[:, 3] - b_np[:, 1])) * 2.0
    cell = max(float(side), 1.0, (hi_x - lo_x) / 256.0, (hi_y - lo_y) / 256.0)
    if not np.isfinite(cell) or not np.isfinite(lo_x + lo_y + hi_x + hi_y):
        raise ValueError("boxes must be finite")
    cdef Py_ssize_t gw = <Py_ssize_t>((hi_x - lo_x) / cell) + 1
    cdef Py_ssize_t gh = <Py_ssize_t>((hi_y - lo_y) / cell) + 1
    c0 = np.floor((b_np[:, 0] - lo_x) / cell).astype(np.intp)
    c1 = np.minimum(np.floor((b_np[:, 2] + offset - lo_x) / cell).astype(np.intp), gw - 1)
    r0 = np.floor((b_np[:, 1] - lo_y) / cell).astype(np.intp)
    r1 = np.minimum(np.floor((b_np[:, 3] + offset - lo_y) / cell).astype(np.intp), gh - 1)
    c1 = np.maximum(c0, c1)
    r1 = np.maximum(r0, r1)
    # compressed lists: the boxes of grid cell g are members[start[g]:start[g + 1]]
    span = (c1 - c0 + 1) * (r1 - r0 + 1)
    owner = np.repeat(np.arange(n, dtype=np.intp), span)
    within = np.arange(len(owner), dtype=np.intp) - np.repeat(np.cumsum(span) - span, span)
    width = np.repeat(c1 - c0 + 1, span)
    gx = np.repeat(c0, span) + within % width
    gy = np.repeat(r0, span) + within // width
    flat = gy * gw + gx
    sorter = np.argsort(flat, kind="stable")
    members_arr = owner[sorter]
    start_arr = np.searchsorted(flat[sorter], np.arange(gw * gh + 1)).astype(np.intp)

    cdef const double[:, ::1] b = b_np
    cdef Py_ssize_t[::1] order = order_arr
    cdef Py_ssize_t[::1] rank = rank_arr
    cdef Py_ssize_t[::1] members = members_arr
    cdef Py_ssize_t[::1] start = start_arr
    cdef Py_ssize_t[::1] gc0 = c0
    cdef Py_ssize_t[::1] gc1 = c1
    cdef Py_ssize_t[::1] gr0 = r0
    cdef Py_ssize_t[::1] gr1 = r1
    cdef double[::1] area = (b_np[:, 2] - b_np[:, 0] + offset) * (b_np[:, 3] - b_np[:, 1] + offset)
    cdef unsigned char[::1] alive = np.ones(n, dtype=np.uint8)
    cdef Py_ssize_t[::1] seen = np.full(n, -1, dtype=np.intp)
    cdef Py_ssize_t[::1] keep = keep_arr
    cdef float[:, ::1] voted = voted_arr
    cdef Py_ssize_t a, i, j, m, gxi, gyi, g, n_keep = 0
    cdef double iw, ih, inter, ov, w, sw, s0, s1, s2, s3

    with nogil:
        for a in range(n):
            i = order[a]
            if not alive[i]:
                continue
            w = scores[i]
            sw = w
            s0 = w * b[i, 0]
            s1 = w * b[i, 1]
            s2 = w * b[i, 2]
            s3 = w * b[i, 3]
            for gyi in range(gr0[i], gr1[i] + 1):
                for gxi in range(gc0[i], gc1[i] + 1):
                    g = gyi * gw + gxi
                    for m in range(start[g], start[g + 1]):
                        j = members[m]
                        if seen[j] == a or rank[j] <= a or not alive[j]:
                            continue
                        seen[j] = a
                        iw = min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0]) + offset
                        if iw <= 0:
                            continue
                        ih = min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1]) + offset
                        if ih <= 0:
                            continue
                        inter = iw * ih
                        ov = inter / (area[i] + area[j] - inter)
                        if ov > iou_threshold:
                            alive[j] = 0
                            if vote:
                                w = scores[j]
                                sw += w
                                s0 += w * b[j, 0]
                                s1 += w * b[j, 1]
                                s2 += w * b[j, 2]
                                s3 += w * b[j, 3]
            keep[n_keep] = i
            if vote and sw > 0:
                voted[n_keep, 0] = <float>(s0 / sw)
                voted[n_keep, 1] = <float>(s1 / sw)
                voted[n_keep, 2] = <float>(s2 / sw)
                voted[n_keep, 3] = <float>(s3 / sw)
            else:
                voted[n_keep, 0] = boxes[i, 0]
                voted[n_keep, 1] = boxes[i, 1]
                voted[n_keep, 2] = boxes[i, 2]
                voted[n_keep, 3] = boxes[i, 3]
            n_keep += 1
    return keep_arr[:n_keep].copy(), voted_arr[:n_keep].copy()
