"""Shared helpers of the training benchmark scripts: WIDER val subsets as training sets, simple inference, AP@0.5.

Not part of the package: the scripts run from a checkout, with the real data under ``CENTERFACE_SHARED_DATA``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["average_precision", "detect_all", "run_training", "shared_widerface", "write_subset_json"]


def shared_widerface() -> Path:
    root = os.environ.get("CENTERFACE_SHARED_DATA")
    if not root or not (Path(root) / "widerface").is_dir():
        raise SystemExit("set CENTERFACE_SHARED_DATA to the folder holding widerface/ (e.g. /work/shared)")
    return Path(root) / "widerface"


def write_subset_json(wf: Path, keep, out: Path) -> list[str]:
    """COCO JSON of the val images (present on disk) whose name passes ``keep(name)``; returns their names."""
    from centerface_flow.data.annotations import read_labels, to_coco, write_coco

    images = read_labels(wf / "wider_face_split" / "wider_face_val_bbx_gt.txt")
    on_disk = wf / "WIDER_val" / "images"
    chosen = [im for im in images if (on_disk / im.file_name).is_file() and keep(im.file_name) and im.faces]
    write_coco(to_coco(chosen, on_disk), out)
    return [im.file_name for im in chosen]


def run_training(config: dict, annotations: Path, images: Path, out_dir: Path) -> Path:
    """``centerface train`` in a child process (MindSpore's ONNX export fails in a process that already compiled
    the training graph: "The pointer[value] is null"); returns the last epoch's checkpoint."""
    import subprocess
    import sys

    import yaml

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "train.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "centerface_flow.cli", "train", "--config", str(out_dir / "train.yaml"),
           "--annotations", str(annotations), "--images", str(images), "--out-dir", str(out_dir), "--no-progress"]
    subprocess.run(cmd, check=True)
    return out_dir / f"epoch_{config['epochs']}.ckpt"


def detect_all(ckpt: Path, image_dir: Path, names: list[str], policy: str = "released", threshold: float = 0.02,
               letterbox_size: int = 832, onnx: bool = True):
    """Run the checkpoint on each image → {name: (boxes (N, 4) xyxy original pixels, scores (N,))} after NMS 0.4.

    With ``onnx`` the checkpoint is first exported (``centerface_flow.export``) and run by onnxruntime, which
    takes every input size without MindSpore's per-shape graph compilation (~3 s per image here)."""
    from centerface_flow import runtime

    runtime.mindspore("graph")
    from centerface_flow.inference.backends import make_runner
    from centerface_flow.inference.decode import peaks_and_decode
    from centerface_flow.inference.preprocess import prepare, read_image
    from centerface_flow.postprocess.nms import nms

    weights = Path(ckpt)
    if onnx:
        from centerface_flow.export import export_checkpoint

        weights = weights.with_suffix(".onnx")
        export_checkpoint(ckpt, weights, "onnx", image_dir / names[0])
    runner = make_runner(weights)
    meta = runner.meta
    out = {}
    for name in names:
        image = read_image(image_dir / name)
        chw, tf = prepare(image, policy, meta.input_format, meta.mean, meta.std, letterbox_size=letterbox_size)
        hm, wh, off, lm = (o[0] for o in runner(chw[None]))
        det = peaks_and_decode(hm, wh, off, lm, k=200, threshold=threshold, landmark_origin=meta.landmark_origin)
        boxes = det.boxes.copy()
        boxes[:, 0::2] = (boxes[:, 0::2] - tf.tx) / tf.sx
        boxes[:, 1::2] = (boxes[:, 1::2] - tf.ty) / tf.sy
        keep, scores = nms(boxes, det.scores, "hard", 0.4)
        out[name] = (boxes[keep], scores)
    return out


def average_precision(dets: dict, gts: dict, iou: float = 0.5, min_side: float = 0.0) -> float:
    """VOC AP (all-point) over all images: ``gts[name]`` (M, 4) xywh; GT faces smaller than ``min_side`` and the
    detections matching them are ignored."""
    records, n_pos = [], 0
    for name, (boxes, scores) in dets.items():
        gt = np.asarray(gts[name], np.float32).reshape(-1, 4)
        gxy = np.concatenate([gt[:, :2], gt[:, :2] + gt[:, 2:]], 1)
        ignore = np.minimum(gt[:, 2], gt[:, 3]) < min_side
        n_pos += int((~ignore).sum())
        used = np.zeros(len(gt), bool)
        for k in np.argsort(-scores):
            b = boxes[k]
            ix = np.clip(np.minimum(b[2], gxy[:, 2]) - np.maximum(b[0], gxy[:, 0]), 0, None)
            iy = np.clip(np.minimum(b[3], gxy[:, 3]) - np.maximum(b[1], gxy[:, 1]), 0, None)
            inter = ix * iy
            union = (b[2] - b[0]) * (b[3] - b[1]) + gt[:, 2] * gt[:, 3] - inter
            ov = inter / np.maximum(union, 1e-9)
            j = int(np.argmax(ov)) if len(gt) else -1
            if j >= 0 and ov[j] >= iou:
                if ignore[j]:
                    continue
                records.append((scores[k], 0 if used[j] else 1))
                used[j] = True
            else:
                records.append((scores[k], 0))
    if not records or n_pos == 0:
        return 0.0
    records.sort(key=lambda r: -r[0])
    tp = np.cumsum([r[1] for r in records])
    fp = np.cumsum([1 - r[1] for r in records])
    rec, prec = tp / n_pos, tp / np.maximum(tp + fp, 1e-9)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))
