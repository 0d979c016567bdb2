"""Inference: images → decoded candidates in original-image pixels (everything before NMS), and the drawings.

One image goes through one *pass* per (scale, flip) combination: pre-process (:mod:`.preprocess`), run the network
(:mod:`.backends`), choose and decode candidate cells (:mod:`.decode`: every cell at or above ``min_score``, or the
``top_k`` 3×3 peaks), then map them back to the original image. The candidates of all passes are concatenated
(test-time augmentation merged before NMS); NMS happens later (:mod:`centerface_flow.postprocess.predictions`). The
flipped pass of a scale runs in the same batch as the unflipped one.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path

import numpy as np

from centerface_flow.errors import UserError
from centerface_flow.inference.candidates import Candidates, CandidatesBuilder
from centerface_flow.inference.preprocess import (
    IMAGE_SUFFIXES,
    LETTERBOX_SIZE,
    SIZE_POLICIES,
    ImageReadError,
    prepare,
    read_image,
)

__all__ = ["InferenceConfig", "collect_images", "detect_image", "draw_detections", "infer_folder", "infer_images",
           "read_ahead"]

log = logging.getLogger(__name__)


#: The recommended test-time augmentation (``--tta``): passes, the cap on the longer side of the largest pass, and
#: the candidate floor (eight passes of cells at 0.01 would make files ~6x larger for 0.0002 AP). docs/evaluation.md
#: has the scale sets measured and why this one.
TTA_SCALES: tuple[float, ...] = (0.75, 1.0, 1.5, 2.0)
TTA_FLIP = True
TTA_MAX_SIDE = 2048
TTA_MIN_SCORE = 0.05


@dataclass(frozen=True)
class InferenceConfig:
    """How candidates are computed: size policy, test scales, flip, candidate selection.

    ``decode``: ``cells`` keeps every heatmap cell scoring at least ``min_score`` (the authors' decoding);
    ``peaks`` keeps the ``top_k`` 3x3 local maxima per pass (see :mod:`centerface_flow.inference.decode`).
    ``tta``: the recommended test-time augmentation (:data:`TTA_SCALES`, flip); it sets ``scales`` and ``flip``
    itself, ``max_side`` to :data:`TTA_MAX_SIDE` unless one is given, and raises ``min_score`` to at least
    :data:`TTA_MIN_SCORE`.
    ``max_side`` (released policy only; 0 = no cap): the largest pass of an image never has a longer side than this;
    every pass of an image is shrunk by the same factor when needed, which bounds time and memory on large photos.
    """

    size: str = "released"
    decode: str = "cells"
    min_score: float = 0.01
    top_k: int = 200
    tta: bool = False
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)
    max_side: int = 0
    letterbox_size: int = LETTERBOX_SIZE
    passes: tuple[tuple[float, bool], ...] = field(init=False)

    def __post_init__(self) -> None:
        from centerface_flow.inference.decode import DECODE_MODES

        if self.size not in SIZE_POLICIES:
            raise UserError(f"size: unknown policy {self.size!r}; choose one of {', '.join(SIZE_POLICIES)}")
        scales = tuple(float(s) for s in self.scales)
        if self.tta:
            chosen = [k for k, v in (("scales", scales != (1.0,)), ("flip", self.flip)) if v]
            if chosen:
                raise UserError(f"tta sets the scales and the flip itself; drop {' and '.join(chosen)} (or tta)")
            scales = TTA_SCALES
            object.__setattr__(self, "flip", TTA_FLIP)
            object.__setattr__(self, "max_side", self.max_side or TTA_MAX_SIDE)
            object.__setattr__(self, "min_score", max(self.min_score, TTA_MIN_SCORE))
        if not scales or not all(0 < s <= 16 for s in scales):
            raise UserError(f"scales: need one or more numbers in (0, 16], got {list(self.scales)}")
        if self.decode not in DECODE_MODES:
            raise UserError(f"decode: unknown mode {self.decode!r}; choose one of {', '.join(DECODE_MODES)}")
        if not 0.0 < self.min_score < 1.0:
            raise UserError(f"min_score: must be in (0, 1), got {self.min_score}")
        if self.top_k <= 0:
            raise UserError(f"top_k: must be positive, got {self.top_k}")
        if self.max_side < 0:
            raise UserError(f"max_side: must be 0 (no cap) or positive, got {self.max_side}")
        if self.letterbox_size < 32 or self.letterbox_size % 32:
            raise UserError(f"letterbox_size: must be a positive multiple of 32, got {self.letterbox_size}")
        object.__setattr__(self, "scales", scales)
        passes = tuple((s, f) for s in scales for f in ((False, True) if self.flip else (False,)))
        object.__setattr__(self, "passes", passes)

    def to_meta(self) -> dict:
        meta = asdict(self)
        meta["passes"] = [{"scale": s, "flip": f} for s, f in self.passes]
        return meta


def _decode_pass(cfg: InferenceConfig, outputs, b: int, input_hw: tuple[int, int], landmark_origin: str):
    from centerface_flow.inference.decode import decode_cells, find_cells, peaks_and_decode

    heatmap, size, offset, landmarks = (o[b] for o in outputs)
    if cfg.decode == "peaks":
        return peaks_and_decode(heatmap, size, offset, landmarks, k=cfg.top_k, landmark_origin=landmark_origin)
    rows, cols = find_cells(heatmap, cfg.min_score)
    return decode_cells(rows, cols, heatmap, size, offset, landmarks, landmark_origin=landmark_origin,
                        clamp_to=input_hw)


#: The parts of the test stage :func:`infer_images` times per image (seconds summed over the images, kept in the
#: candidates' ``stage_seconds``); :func:`infer_folder` also logs the time of writing the candidates file. ``read``
#: is the time spent waiting for an image: they are read one ahead, on a thread (:func:`read_ahead`).
STAGES = ("read", "preprocess", "network", "decode")


def detect_image(runner, image_bgr: np.ndarray, cfg: InferenceConfig,
                 pass_seconds: np.ndarray | None = None, stage_seconds: dict | None = None) -> tuple[np.ndarray, ...]:
    """Candidates of one BGR image: boxes (M, 4), scores (M,), landmarks (M, 5, 2) in original pixels, and
    passes (M,) uint8 (index into ``cfg.passes``), sorted by descending score.

    ``pass_seconds`` (len(cfg.passes),): when given, each pass's wall time is added to it (a flipped pass shares
    its batch with the unflipped one, so the two split that batch's time). ``stage_seconds``: when given, the
    time of pre-processing, the network and decoding is added to its keys of :data:`STAGES`.
    """
    stages = stage_seconds if stage_seconds is not None else dict.fromkeys(STAGES, 0.0)
    meta = runner.meta
    longest = max(image_bgr.shape[:2]) * max(cfg.scales)
    base = min(1.0, cfg.max_side / longest) if cfg.max_side and cfg.size == "released" else 1.0
    parts = []
    for scale in cfg.scales:
        start = time.perf_counter()
        flips = [f for s, f in cfg.passes if s == scale]
        prepared = [prepare(image_bgr, cfg.size, meta.input_format, meta.mean, meta.std, scale=scale * base, flip=f,
                            letterbox_size=cfg.letterbox_size) for f in flips]
        batch = prepared[0][0][None] if len(prepared) == 1 else np.stack([chw for chw, _ in prepared])
        network_start = time.perf_counter()
        stages["preprocess"] += network_start - start
        outputs = runner(batch)
        decode_start = time.perf_counter()
        stages["network"] += decode_start - network_start
        for b, (_, transform) in enumerate(prepared):
            dets = _decode_pass(cfg, outputs, b, (transform.input_h, transform.input_w), meta.landmark_origin)
            index = cfg.passes.index((scale, transform.flipped))
            parts.append((transform.boxes_to_original(dets.boxes), dets.scores,
                          transform.landmarks_to_original(dets.landmarks), np.full(len(dets), index, np.uint8)))
        stages["decode"] += time.perf_counter() - decode_start
        if pass_seconds is not None:
            for _, transform in prepared:
                pass_seconds[cfg.passes.index((scale, transform.flipped))] += (time.perf_counter() - start) / len(
                    prepared)
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


def read_ahead(paths: list[Path]):
    """Each path's image, or the :class:`ImageReadError` that says why there is none, in order; the next image is
    read on a thread while the caller works on the current one. OpenCV decodes without holding the GIL, so reading
    overlaps the network call and the Python around it: the 610 shared val images took 0-10% less time, 5% on
    average (7 runs each way, alternating; docs/performance.md). One thread reads one image at a time, so
    ``read_image`` never runs concurrently with itself."""
    from concurrent.futures import ThreadPoolExecutor

    def read(path: Path):
        try:
            return read_image(path)
        except ImageReadError as exc:
            return exc

    with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as pool:
        upcoming = pool.submit(read, paths[0]) if paths else None
        for i in range(len(paths)):
            current, upcoming = upcoming, pool.submit(read, paths[i + 1]) if i + 1 < len(paths) else None
            yield current.result()


def infer_images(runner, images: list[tuple[Path, str]], cfg: InferenceConfig, progress: bool = True,
                 extra_meta: dict | None = None) -> Candidates:
    """Run :func:`detect_image` on every (path, relative name); unreadable images are logged and listed in
    ``Candidates.failed``."""
    from tqdm import tqdm

    builder = CandidatesBuilder()
    pass_seconds = np.zeros(len(cfg.passes))
    stage_seconds = dict.fromkeys(STAGES, 0.0)
    with contextlib.closing(read_ahead([path for path, _ in images])) as reads:
        for count, (_, rel) in enumerate(tqdm(images, desc="infer", unit="img", disable=not progress,
                                              dynamic_ncols=True)):
            if not progress and count and count % 50 == 0:
                log.info("%d / %d images", count, len(images))
            start = time.perf_counter()
            image = next(reads)
            stage_seconds["read"] += time.perf_counter() - start
            if isinstance(image, ImageReadError):
                log.error("skipping %s", image)
                builder.failed.append(rel)
                continue
            boxes, scores, landmarks, passes = detect_image(runner, image, cfg, pass_seconds, stage_seconds)
            builder.add(rel, (image.shape[1], image.shape[0]), boxes, scores, landmarks, passes)
    model_meta = asdict(runner.meta) if is_dataclass(runner.meta) else vars(runner.meta)
    meta = {"inference": cfg.to_meta(), "pass_seconds": [round(float(t), 3) for t in pass_seconds],
            "stage_seconds": {k: round(v, 3) for k, v in stage_seconds.items()},
            "weights": str(runner.weights), "backend": runner.backend, "runner": runner.description,
            "model_meta": model_meta, **(extra_meta or {})}
    return builder.build(meta)


def infer_folder(weights: str | os.PathLike, images_dir: str | os.PathLike, out: str | os.PathLike,
                 cfg: InferenceConfig, backend: str | None = None, mode: str = "auto", pad_multiple: int | None = None,
                 limit: int | None = None, progress: bool = False) -> Candidates:
    """``centerface infer``: every image under ``images_dir`` through ``weights`` -> candidates file ``out``.

    Returns the candidates written (``failed`` lists the unreadable images). ``mode`` ``auto``: see
    :func:`centerface_flow.inference.backends.resolve_mode`; ``pad_multiple`` None = the default for ``cfg`` and
    the mode (:func:`centerface_flow.inference.backends.default_pad_multiple`).
    """
    import time

    from centerface_flow.inference.backends import default_pad_multiple, make_runner, resolve_mode
    from centerface_flow.inference.candidates import save_candidates

    images = collect_images(images_dir)[:limit]
    if not images:
        raise UserError(f"{images_dir}: no images found (expected <event>/<image>.jpg)")
    mode = resolve_mode(mode)
    pad = pad_multiple if pad_multiple is not None else default_pad_multiple(cfg.size, cfg.scales, mode)
    runner = make_runner(weights, backend, mode, pad)
    log.info("%s: %d images, size %s, scales %s, flip %s, decode %s", runner.description, len(images), cfg.size,
             list(cfg.scales), cfg.flip, cfg.decode)
    start = time.perf_counter()
    cands = infer_images(runner, images, cfg, progress=progress, extra_meta={"images": str(images_dir)})
    seconds = time.perf_counter() - start
    cands.meta["seconds"] = round(seconds, 2)
    write_start = time.perf_counter()
    save_candidates(out, cands)
    stages = dict(cands.meta["stage_seconds"], write=time.perf_counter() - write_start)
    count = max(len(images), 1)
    log.info("%d images in %.1f s (%.0f ms per image), %d candidates -> %s", len(cands), seconds,
             1000 * seconds / count, len(cands.scores), out)
    log.info("ms per image: %s", ", ".join(f"{k} {1000 * v / count:.1f}" for k, v in stages.items()))
    if cands.failed:
        log.error("%d images could not be read: %s", len(cands.failed), ", ".join(cands.failed))
    return cands


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
