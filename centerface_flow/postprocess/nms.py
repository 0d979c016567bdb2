"""Non-maximum suppression for one image: hard, soft-linear and soft-gaussian.

The compiled kernels live in ``kernels/nms.pyx`` (module ``centerface_flow._kernels.nms``): a grid-bucketed one
for hard NMS (:func:`hard_nms_vote`) and one for the soft decays; a numpy twin of all three
methods, which the tests compare against, runs with ``use_kernel=False`` and when the extension is not built.

Semantics (those of the soft-NMS used by the MindSpore model zoo's CenterFace test, Bodla et al. 2017):

1. Select the remaining box with the highest current score (ties: the lowest input index) and keep it.
2. For every other remaining box ``j`` with IoU ``ov`` against the selected box, where widths, heights and
   areas use ``+ offset`` (``offset=1`` is the model zoo's and the WIDER evaluation's pixel convention):

   - ``hard``: remove ``j`` if ``ov > iou_threshold`` (``Nt``);
   - ``linear``: ``s_j *= 1 - ov`` if ``ov > iou_threshold``;
   - ``gaussian``: ``s_j *= exp(-ov**2 / sigma)`` (``iou_threshold`` is not used).

   After a soft decay, ``j`` is removed if ``s_j < final_threshold`` (the model zoo's ``threshold=0.001``).
3. Repeat until no box remains. Kept boxes come out in selection order, so their final scores never increase.

Unlike the model zoo, callers receive only the kept boxes (not the whole reordered array with stale rows).

:func:`hard_nms_vote` is hard NMS with box voting: the same boxes are kept, each moved to the score-weighted mean of
itself and the boxes it suppressed (it merges the passes of test-time augmentation rather than choosing one).
"""
from __future__ import annotations

import logging

import numpy as np

__all__ = ["NMS_METHODS", "hard_nms_vote", "hard_nms_vote_numpy", "have_kernel", "nms"]

log = logging.getLogger(__name__)

#: Method names accepted by :func:`nms`, mapped to the kernel's method codes.
NMS_METHODS = {"hard": 0, "linear": 1, "gaussian": 2}

try:
    from centerface_flow._kernels.nms import hard_nms_vote as _vote_kernel
    from centerface_flow._kernels.nms import soft_nms as _soft_nms_kernel
except ImportError:  # pragma: no cover - only when the package was installed without building the kernels
    _soft_nms_kernel = _vote_kernel = None


def have_kernel() -> bool:
    """True when the compiled Cython kernel is available."""
    return _soft_nms_kernel is not None


def _check(boxes: np.ndarray, scores: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray, int]:
    if method not in NMS_METHODS:
        raise ValueError(f"unknown NMS method {method!r}; choose one of {sorted(NMS_METHODS)}")
    boxes = np.ascontiguousarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.ascontiguousarray(scores, dtype=np.float32).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"boxes has {len(boxes)} rows but scores has {len(scores)}")
    return boxes, scores, NMS_METHODS[method]


def _nms_numpy(boxes: np.ndarray, scores: np.ndarray, code: int, iou_threshold: float, sigma: float,
               final_threshold: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Numpy twin of the Cython kernels, on arguments :func:`nms` has checked (``code`` from :data:`NMS_METHODS`)."""
    b = boxes.astype(np.float64)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    area = (x2 - x1 + offset) * (y2 - y1 + offset)
    s = scores.astype(np.float64)
    active = np.arange(len(s), dtype=np.intp)  # kept in ascending order, so argmax breaks ties by lowest index
    keep, kept = [], []
    while active.size:
        pick = int(np.argmax(s[active]))
        best = active[pick]
        keep.append(best)
        kept.append(s[best])
        rest = np.delete(active, pick)
        iw = np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + offset
        ih = np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + offset
        touch = (iw > 0) & (ih > 0)
        inter = iw[touch] * ih[touch]
        ov = inter / (area[best] + area[rest[touch]] - inter)
        if code == 0:
            weight = np.where(ov > iou_threshold, 0.0, 1.0)
        elif code == 1:
            weight = np.where(ov > iou_threshold, 1.0 - ov, 1.0)
        else:
            weight = np.exp(-(ov * ov) / sigma)
        s[rest[touch]] = s[rest[touch]] * weight
        drop = np.zeros(rest.size, dtype=bool)
        if code == 0:
            drop[touch] = weight == 0.0
        else:
            drop[touch] = s[rest[touch]] < final_threshold
        active = rest[~drop]
    return np.asarray(keep, dtype=np.intp), np.asarray(kept, dtype=np.float32)


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    method: str = "hard",
    iou_threshold: float = 0.3,
    sigma: float = 0.5,
    final_threshold: float = 0.001,
    offset: float = 1.0,
    use_kernel: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Hard or soft NMS on one image (Cython kernel, or the numpy twin if ``use_kernel`` is false or unbuilt).

    boxes: (N, 4) xyxy; scores: (N,). Returns ``keep`` (M,) intp input indices in selection order and the
    final scores (M,) float32 (unchanged for ``hard``, decayed for the soft methods).
    """
    boxes, scores, code = _check(boxes, scores, method)
    if not use_kernel or _soft_nms_kernel is None:
        return _nms_numpy(boxes, scores, code, iou_threshold, sigma, final_threshold, offset)
    if method == "hard":  # the grid-bucketed kernel: a kept box is compared only with the candidates near it
        keep, _ = _vote_kernel(boxes, scores, float(iou_threshold), float(offset), False)
        return keep, scores[keep]
    return _soft_nms_kernel(boxes, scores, code, float(iou_threshold), float(sigma), float(final_threshold),
                            float(offset))


def hard_nms_vote_numpy(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3,
                        offset: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Numpy twin of the box-voting kernel: ``keep`` (M,) intp in selection order, voted boxes (M, 4) float32."""
    boxes, scores, _ = _check(boxes, scores, "hard")
    b = boxes.astype(np.float64)
    s = scores.astype(np.float64)
    area = (b[:, 2] - b[:, 0] + offset) * (b[:, 3] - b[:, 1] + offset)
    order = np.lexsort((np.arange(len(s)), -s))
    alive = np.ones(len(s), bool)
    keep, voted = [], []
    for a, i in enumerate(order):
        if not alive[i]:
            continue
        rest = order[a + 1:][alive[order[a + 1:]]]
        iw = np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]) + offset
        ih = np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]) + offset
        inter = iw * ih
        with np.errstate(divide="ignore", invalid="ignore"):
            gone = rest[(iw > 0) & (ih > 0) & (inter / (area[i] + area[rest] - inter) > iou_threshold)]
        alive[gone] = False
        group = np.concatenate([[i], gone])
        weight = s[group]
        keep.append(i)
        voted.append(weight @ b[group] / weight.sum() if weight.sum() > 0 else b[i])
    return np.asarray(keep, dtype=np.intp), np.asarray(voted, dtype=np.float32).reshape(-1, 4)


def hard_nms_vote(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3, offset: float = 1.0,
                  use_kernel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Hard NMS with box voting (see the module docstring): ``keep`` (M,) intp, voted boxes (M, 4) float32."""
    if not use_kernel or _vote_kernel is None:
        return hard_nms_vote_numpy(boxes, scores, iou_threshold, offset)
    boxes, scores, _ = _check(boxes, scores, "hard")
    return _vote_kernel(boxes, scores, float(iou_threshold), float(offset))
