"""Dense stride-4 training targets for CenterFace (numpy), following the model zoo's ``multi_pose.preprocess_train``.

Units and channel orders (the model zoo's; :mod:`centerface_flow.inference.decode` reads network outputs the same way):

* ``heatmap`` (1, H, W): CenterNet "umich" gaussian per face, peak 1 at the integer centre ``ct_int``. With
  ``min_side`` > 0, faces whose clipped box has a side below it are *ignored*: no centre and no regression targets,
  and the cells of their box that no kept face's gaussian covers hold :data:`IGNORE` (-1), which the focal loss
  counts neither as positive nor as negative (CenterNet-style ignore regions).
* ``size`` (2, H, W): channel 0 ``log(w / 4)``, channel 1 ``log(h / 4)`` with ``w, h`` in *output* (stride-4)
  pixels, i.e. decode ``exp(size) * 4`` gives the box size in output pixels.
* ``offset`` (2, H, W): channel 0 ``cx - floor(cx)``, channel 1 ``cy - floor(cy)`` (output pixels).
* ``landmarks`` (10, H, W): for landmark ``j`` channel ``2j`` is ``(x_j - o_x) / w`` and ``2j+1`` is
  ``(y_j - o_y) / h`` (x before y), normalised by the box size, relative to the origin ``o`` named by
  ``landmark_origin`` (``ModelMeta.landmark_origin``): ``"cell"`` = the integer centre ``ct_int`` (model zoo),
  ``"center"`` = the sub-pixel centre (what the converted released model predicts; used when fine-tuning it).
* ``ind`` (H, W): 1 at each face's integer centre (the loss masks size/offset/landmarks with it).
* ``weight`` (2, H, W): the model zoo's small-face weight mask on the size/offset loss: 1 at a centre, raised to 5 /
  10 / 15 for boxes of area ≤ 40 / 20 / 10 output pixels², and lowered to 0.1 at ≤ 4 (tiny, unreliable boxes);
  with ``small_face_weights=False`` it is 1 at every centre.
* ``hps_mask`` (10, H, W): 1 where a landmark target is valid (landmark labelled, inside the output map, and the face's
  pre-crop box area > 8 px²). Faces without landmarks train box terms only.
* ``reg_mask`` (max_objs,) uint8: 1 for every face that produced a centre (kept for parity; the losses use ``ind``).

Input boxes/landmarks are already in output-map coordinates (the augmentation's affine maps image → output).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "IGNORE",
    "STRIDE",
    "TARGET_KEYS",
    "decode_targets",
    "draw_gaussian",
    "encode",
    "gaussian_2d",
    "gaussian_radius",
    "small_face_weight",
]

STRIDE = 4
#: Keys of :func:`encode`'s result in the order the data pipeline emits them (after ``image``).
TARGET_KEYS = ("heatmap", "ind", "size", "weight", "offset", "hps_mask", "landmarks")
#: Heatmap target value of ignored cells (see ``min_side`` of :func:`encode`).
IGNORE = -1.0
#: Model zoo: landmark targets are switched off for faces whose box (after anchor sampling) is ≤ 8 px².
MIN_LANDMARK_AREA = 8.0


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's gaussian radius for a box of ``height × width`` output pixels.

    This is CenterNet's formula as the model zoo uses it, including its well-known deviations from the exact
    quadratic roots (the ``/2`` instead of ``/(2a)``); kept so targets match the recipe the released numbers came from.
    """
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def gaussian_2d(radius: int) -> np.ndarray:
    """(2r+1, 2r+1) float32 gaussian with sigma = diameter / 6, peak 1; values below float eps·max set to 0."""
    diameter = 2 * radius + 1
    sigma = diameter / 6
    y, x = np.ogrid[-radius: radius + 1, -radius: radius + 1]
    g = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    return g.astype(np.float32)


def draw_gaussian(heatmap: np.ndarray, center: tuple[int, int], radius: int) -> np.ndarray:
    """Draw a gaussian of ``radius`` at integer ``center`` (x, y) into ``heatmap`` (H, W) by element-wise max."""
    height, width = heatmap.shape
    x, y = int(center[0]), int(center[1])
    g = gaussian_2d(radius)
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    if left + right <= 0 or top + bottom <= 0:
        return heatmap
    region = heatmap[y - top: y + bottom, x - left: x + right]
    patch = g[radius - top: radius + bottom, radius - left: radius + right]
    if region.size and patch.size:
        np.maximum(region, patch, out=region)
    return heatmap


def small_face_weight(area: float) -> float:
    """The model zoo's size/offset loss weight for a face of ``area`` output pixels²."""
    if area <= 4:
        return 0.1
    if area <= 10:
        return 15.0
    if area <= 20:
        return 10.0
    if area <= 40:
        return 5.0
    return 1.0


def encode(boxes: np.ndarray, landmarks: np.ndarray, out_hw: tuple[int, int], max_objs: int = 64,
           source_area: np.ndarray | None = None, landmark_origin: str = "cell", min_side: float = 0.0,
           small_face_weights: bool = True) -> dict[str, np.ndarray]:
    """Dense targets for one image.

    boxes: (N, 4) float32 xyxy in output pixels (may extend past the map; clipped like the model zoo).
    landmarks: (N, 5, 3) float32 ``x y v`` in output pixels; ``v > 0`` marks a labelled landmark.
    out_hw: output map size (H, W) = input size / 4.
    max_objs: length of ``reg_mask``; faces beyond it still get targets (the caller subsamples, see pipeline).
    source_area: (N,) box areas before the crop (input pixels); landmarks of faces with area ≤ 8 are masked out.
    landmark_origin: ``"cell"`` or ``"center"`` (see module docstring).
    min_side: faces whose clipped box is narrower or lower than this (output pixels) are ignored (module docstring).
    small_face_weights: apply the model zoo's small-face weight mask (else weight 1 at every centre).
    Returns the arrays described in the module docstring (float32, channel-first).
    """
    if landmark_origin not in ("cell", "center"):
        raise ValueError(f"landmark_origin must be 'cell' or 'center', got {landmark_origin!r}")
    out_h, out_w = out_hw
    heatmap = np.zeros((1, out_h, out_w), np.float32)
    ind = np.zeros((out_h, out_w), np.float32)
    size = np.zeros((2, out_h, out_w), np.float32)
    weight = np.zeros((2, out_h, out_w), np.float32)
    offset = np.zeros((2, out_h, out_w), np.float32)
    hps_mask = np.zeros((10, out_h, out_w), np.float32)
    lm_target = np.zeros((10, out_h, out_w), np.float32)
    reg_mask = np.zeros((max_objs,), np.uint8)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    landmarks = np.asarray(landmarks, np.float32).reshape(-1, 5, 3)
    ignored = []
    for k in range(len(boxes)):
        x1, y1, x2, y2 = boxes[k]
        x1, x2 = np.clip([x1, x2], 0, out_w - 1)
        y1, y2 = np.clip([y1, y2], 0, out_h - 1)
        h, w = float(y2 - y1), float(x2 - x1)
        if h <= 0 or w <= 0:
            continue
        if min(h, w) < min_side:
            ignored.append((x1, y1, x2, y2))
            continue
        radius = max(0, int(gaussian_radius(math.ceil(h), math.ceil(w))))
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        ix, iy = int(cx), int(cy)
        ind[iy, ix] = 1.0
        size[:, iy, ix] = (math.log(w / 4), math.log(h / 4))
        offset[:, iy, ix] = (cx - ix, cy - iy)
        weight[:, iy, ix] = small_face_weight(w * h) if small_face_weights else 1.0
        if k < max_objs:
            reg_mask[k] = 1
        small = source_area is not None and source_area[k] <= MIN_LANDMARK_AREA
        ox, oy = (ix, iy) if landmark_origin == "cell" else (cx, cy)
        for j in range(5):
            lx, ly, v = landmarks[k, j]
            if v <= 0 or not (0 <= lx < out_w and 0 <= ly < out_h):
                continue
            lm_target[2 * j, iy, ix] = (lx - ox) / w
            lm_target[2 * j + 1, iy, ix] = (ly - oy) / h
            hps_mask[2 * j: 2 * j + 2, iy, ix] = 0.0 if small else 1.0
        draw_gaussian(heatmap[0], (ix, iy), radius)
    for x1, y1, x2, y2 in ignored:  # every cell the box touches, unless a kept face's gaussian is drawn there
        region = heatmap[0, int(y1): int(y2) + 1, int(x1): int(x2) + 1]
        region[region == 0] = IGNORE
    return {
        "heatmap": heatmap,
        "ind": ind,
        "size": size,
        "weight": weight,
        "offset": offset,
        "hps_mask": hps_mask,
        "landmarks": lm_target,
        "reg_mask": reg_mask,
    }


def decode_targets(targets: dict[str, np.ndarray], stride: int = STRIDE,
                   landmark_origin: str = "cell") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Invert :func:`encode` exactly from the ``ind`` map (a reference for tests; no peak search).

    Returns ``boxes`` (N, 4) float32 xyxy, ``landmarks`` (N, 5, 2) float32 and ``valid`` (N, 5) bool, in input pixels
    (output pixels × ``stride``), ordered by (y, x) of the centre.
    """
    ys, xs = np.nonzero(targets["ind"])
    off = targets["offset"][:, ys, xs]
    wh = np.exp(targets["size"][:, ys, xs]) * 4
    cx, cy = xs + off[0], ys + off[1]
    boxes = np.stack([cx - wh[0] / 2, cy - wh[1] / 2, cx + wh[0] / 2, cy + wh[1] / 2], 1) * stride
    lm = targets["landmarks"][:, ys, xs].T.reshape(-1, 5, 2)
    ox, oy = (xs, ys) if landmark_origin == "cell" else (cx, cy)
    lms = np.stack([ox[:, None] + lm[..., 0] * wh[0][:, None], oy[:, None] + lm[..., 1] * wh[1][:, None]], -1)
    valid = targets["hps_mask"][0::2, ys, xs].T > 0
    return boxes.astype(np.float32), (lms * stride).astype(np.float32), valid
