"""Inference: images → decoded candidates in original-image pixels (everything before NMS), and the drawings.

One image goes through one *pass* per (scale, flip) combination: pre-process (:mod:`centerface_flow.preprocess`),
run the network (:mod:`centerface_flow.backends`), keep the ``top_k`` 3×3 heatmap peaks and decode them
(:func:`centerface_flow.decode.peaks_and_decode`), then map them back to the original image. The candidates of all
passes are concatenated (test-time augmentation merged before NMS); NMS happens later
(:mod:`centerface_flow.postprocess`). The flipped pass of a scale runs in the same batch as the unflipped one.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path

import numpy as np

from centerface_flow.candidates import Candidates, CandidatesBuilder
from centerface_flow.errors import UserError
from centerface_flow.preprocess import (
    IMAGE_SUFFIXES,
    LETTERBOX_SIZE,
    SIZE_POLICIES,
    ImageReadError,
    prepare,
    read_image,
)

__all__ = ["InferenceConfig", "collect_images", "detect_image", "draw_detections", "infer_images"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceConfig:
    """How candidates are computed: size policy, test scales, flip, peaks kept per pass.

    ``max_side`` (released policy only; 0 = no cap): images whose longer side exceeds it are processed as if first
    shrunk to that side (the test scales then apply on top), which bounds time and memory on large photos.
    """

    size: str = "released"
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    top_k: int = 200
    letterbox_size: int = LETTERBOX_SIZE
    max_side: int = 0
    passes: tuple[tuple[float, bool], ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.size not in SIZE_POLICIES:
            raise UserError(f"size: unknown policy {self.size!r}; choose one of {', '.join(SIZE_POLICIES)}")
        scales = tuple(float(s) for s in self.scales)
        if not scales or any(s <= 0 for s in scales):
            raise UserError(f"scales: need one or more positive numbers, got {list(self.scales)}")
        if self.top_k <= 0:
            raise UserError(f"top_k: must be positive, got {self.top_k}")
        if self.max_side < 0:
            raise UserError(f"max_side: must be 0 (no cap) or positive, got {self.max_side}")
        object.__setattr__(self, "scales", scales)
        passes = tuple((s, f) for s in scales for f in ((False, True) if self.flip else (False,)))
        object.__setattr__(self, "passes", passes)

    def to_meta(self) -> dict:
        meta = asdict(self)
        meta["passes"] = [{"scale": s, "flip": f} for s, f in self.passes]
        return meta


def detect_image(runner, image_bgr: np.ndarray, cfg: InferenceConfig) -> tuple[np.ndarray, ...]:
    """Candidates of one BGR image: boxes (M, 4), scores (M,), landmarks (M, 5, 2) in original pixels, and
    passes (M,) uint8 (index into ``cfg.passes``), sorted by descending score."""
    from centerface_flow.decode import peaks_and_decode

    meta = runner.meta
    longest = max(image_bgr.shape[:2])
    base = min(1.0, cfg.max_side / longest) if cfg.max_side and cfg.size == "released" else 1.0
    parts = []
    for scale in cfg.scales:
        flips = (False, True) if cfg.flip else (False,)
        prepared = [prepare(image_bgr, cfg.size, meta.input_format, meta.mean, meta.std, scale=scale * base, flip=f,
                            letterbox_size=cfg.letterbox_size) for f in flips]
        heatmap, size, offset, landmarks = runner(np.stack([chw for chw, _ in prepared]))
        for b, (_, transform) in enumerate(prepared):
            dets = peaks_and_decode(heatmap[b], size[b], offset[b], landmarks[b], k=cfg.top_k,
                                    landmark_origin=meta.landmark_origin)
            index = cfg.passes.index((scale, transform.flipped))
            parts.append((transform.boxes_to_original(dets.boxes), dets.scores,
                          transform.landmarks_to_original(dets.landmarks), np.full(len(dets), index, np.uint8)))
    boxes, scores, landmarks, passes = (np.concatenate(p) for p in zip(*parts))
    order = np.argsort(-scores, kind="stable")
    return boxes[order], scores[order], landmarks[order], passes[order]


def collect_images(root: str | os.PathLike) -> list[tuple[Path, str]]:
    """Image files under ``root`` (recursively, sorted) as (path, POSIX path relative to ``root``)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: image folder not found")
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return [(p, p.relative_to(root).as_posix()) for p in found]


def infer_images(runner, images: list[tuple[Path, str]], cfg: InferenceConfig, progress: bool = True,
                 extra_meta: dict | None = None) -> Candidates:
    """Run :func:`detect_image` on every (path, relative name); unreadable images are logged and listed in
    ``Candidates.failed``."""
    from tqdm import tqdm

    builder = CandidatesBuilder()
    for count, (path, rel) in enumerate(tqdm(images, desc="infer", unit="img", disable=not progress,
                                             dynamic_ncols=True)):
        if not progress and count and count % 50 == 0:
            log.info("%d / %d images", count, len(images))
        try:
            image = read_image(path)
        except ImageReadError as exc:
            log.error("skipping %s", exc)
            builder.failed.append(rel)
            continue
        boxes, scores, landmarks, passes = detect_image(runner, image, cfg)
        builder.add(rel, (image.shape[1], image.shape[0]), boxes, scores, landmarks, passes)
    meta = {"inference": cfg.to_meta(), "weights": str(runner.weights), "backend": runner.backend,
            "runner": runner.description, "model_meta": asdict(runner.meta) if is_dataclass(runner.meta) else vars(runner.meta), **(extra_meta or {})}
    return builder.build(meta)


def draw_detections(image_bgr: np.ndarray, boxes: np.ndarray, scores: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A copy of the image with boxes (green), scores and the 5 landmarks (one colour per point) drawn."""
    import cv2

    out = image_bgr.copy()
    thick = max(1, round(max(out.shape[:2]) / 600))
    colours = ((255, 0, 0), (0, 0, 255), (0, 255, 255), (255, 0, 255), (255, 255, 0))
    for (x1, y1, x2, y2), s, pts in zip(boxes.tolist(), scores.tolist(), landmarks.tolist()):
        cv2.rectangle(out, (round(x1), round(y1)), (round(x2), round(y2)), (0, 255, 0), thick)
        cv2.putText(out, f"{s:.2f}", (round(x1), max(0, round(y1) - 3)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thick, (0, 255, 0), thick)
        for (px, py), colour in zip(pts, colours):
            cv2.circle(out, (round(px), round(py)), thick + 1, colour, -1)
    return out
