"""Check a converted released checkpoint against the original ONNX file on real images.

Used by ``tests/test_convert_released.py`` and ``benchmarks/parity_released.py``. The reference decoder here is a
re-implementation of the decoding in ``deface/centerface.py`` (``CenterFace.decode``: every heatmap cell above the
threshold, box and landmarks relative to the clipped top-left corner, greedy NMS at IoU 0.3); it is independent of
``centerface_flow.inference.decode`` on purpose, so comparing the two checks our conventions and the head conversion.
"""
from __future__ import annotations

import numpy as np

from centerface_flow.convert.released import ONNX_INPUT, ONNX_OUTPUTS, map_released_outputs
from centerface_flow.inference.decode import decode_cells

__all__ = ["clip_like_deface", "compare_on_image", "deface_decode", "deface_nms", "released_input"]


def released_input(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (h, w, 3) -> (1, 3, H, W) float32 raw 0-255, H/W = h/w rounded up to a multiple of 32 (the demo)."""
    import cv2

    h, w = rgb.shape[:2]
    new_h, new_w = int(np.ceil(h / 32) * 32), int(np.ceil(w / 32) * 32)
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(resized.astype(np.float32).transpose(2, 0, 1)[None])


def deface_decode(outputs, size_hw: tuple[int, int], threshold: float):
    """deface's decoding without its NMS: released outputs (batch 1) -> (boxes (N, 4), scores (N,),
    landmarks (N, 10) as x0, y0, ..., cells (N, 2) row/col) for every cell with heatmap > threshold, row-major."""
    heatmap, scale, offset, landmark = (np.asarray(o)[0] for o in outputs)
    rows, cols = np.where(heatmap[0] > threshold)
    height, width = size_hw
    s0, s1 = np.exp(scale[0, rows, cols]) * 4, np.exp(scale[1, rows, cols]) * 4
    o0, o1 = offset[0, rows, cols], offset[1, rows, cols]
    x1 = np.minimum(np.maximum(0, (cols + o1 + 0.5) * 4 - s1 / 2), width)
    y1 = np.minimum(np.maximum(0, (rows + o0 + 0.5) * 4 - s0 / 2), height)
    boxes = np.stack([x1, y1, np.minimum(x1 + s1, width), np.minimum(y1 + s0, height)], axis=1)
    lms = np.empty((rows.size, 10), np.float64)
    for j in range(5):
        lms[:, 2 * j] = landmark[2 * j + 1, rows, cols] * s1 + x1
        lms[:, 2 * j + 1] = landmark[2 * j, rows, cols] * s0 + y1
    return boxes, heatmap[0, rows, cols], lms, np.stack([rows, cols], axis=1)


def deface_nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.3) -> np.ndarray:
    """deface's greedy NMS (suppress when IoU >= ``iou``) -> kept indices (M,) intp, ascending."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(scores)[::-1]
    suppressed = np.zeros(len(scores), bool)
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        rest = order[pos + 1:]
        w = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        suppressed[rest[inter / (areas[i] + areas[rest] - inter) >= iou]] = True
    return np.flatnonzero(~suppressed)


def clip_like_deface(boxes: np.ndarray, landmarks: np.ndarray, size_hw: tuple[int, int]):
    """Apply deface's border rule to unclipped boxes (N, 4) / landmarks (N, 5, 2): clip (x1, y1) to the image,
    then x2 = min(x1 + w, W), y2 = min(y1 + h, H) and move the landmarks with the corner -> (boxes, (N, 10))."""
    height, width = size_hw
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    x1 = np.minimum(np.maximum(0, boxes[:, 0]), width)
    y1 = np.minimum(np.maximum(0, boxes[:, 1]), height)
    out = np.stack([x1, y1, np.minimum(x1 + w, width), np.minimum(y1 + h, height)], axis=1)
    lms = landmarks.astype(np.float64).copy()
    lms[:, :, 0] += (x1 - boxes[:, 0])[:, None]
    lms[:, :, 1] += (y1 - boxes[:, 1])[:, None]
    return out, lms.reshape(-1, 10)


def compare_on_image(rgb: np.ndarray, net, session, threshold: float = 0.2) -> dict:
    """Run the converted ``net`` and the ONNX ``session`` on one RGB image and compare.

    Returns ``rel_err`` (4 values: max |ours - mapped ref| / max |mapped ref| per output), ``input_hw``,
    ``detections`` (after deface's NMS), ``same_set`` (same heatmap cells kept), ``max_box_px``, ``max_score``,
    ``max_landmark_px``, ``clipped`` (detections touched by deface's border rule).
    """
    import mindspore as ms

    x = released_input(rgb)
    raw = session.run(list(ONNX_OUTPUTS), {ONNX_INPUT: x})
    ref = map_released_outputs(raw)
    ours = [o.asnumpy() for o in net(ms.Tensor(x))]
    rel = [float(np.abs(o - r).max() / np.abs(r).max()) for o, r in zip(ours, ref)]
    size_hw = x.shape[2:]

    ref_boxes, ref_scores, ref_lms, ref_cells = deface_decode(raw, size_hw, threshold)
    det = decode_cells(ref_cells[:, 0], ref_cells[:, 1], *(o[0] for o in ours), landmark_origin="center")
    our_boxes, our_lms = clip_like_deface(det.boxes, det.landmarks, size_hw)
    keep_ref = deface_nms(ref_boxes, ref_scores)
    keep_ours = deface_nms(our_boxes, det.scores)
    same = np.array_equal(keep_ref, keep_ours)
    keep = keep_ref if same else np.intersect1d(keep_ref, keep_ours)

    def worst(a, b):
        return float(np.abs(a[keep] - b[keep]).max()) if keep.size else 0.0

    clipped = np.any((ref_boxes[keep, :2] <= 0) | (ref_boxes[keep, 2:] >= np.array(size_hw[::-1])), axis=1)
    return {
        "input_hw": tuple(int(v) for v in size_hw),
        "rel_err": rel,
        "candidates": len(ref_scores),
        "detections": int(keep_ref.size),
        "same_set": bool(same),
        "max_box_px": worst(our_boxes, ref_boxes),
        "max_score": worst(det.scores, ref_scores),
        "max_landmark_px": worst(our_lms, ref_lms),
        "clipped": int(clipped.sum()),
    }
