"""Candidates → final detections → WIDER FACE prediction files and the landmarks table.

Per image: drop candidates scoring below ``score_threshold``, clip boxes to the image, run NMS
(:mod:`centerface_flow.postprocess.nms`), keep at most ``max_dets`` (highest final scores first).

**WIDER prediction file** ``<event>/<image stem>.txt`` (``<image stem>.txt`` for images outside a WIDER layout)::

    0_Parade_marchingband_1_465          <- line 1: image name (file name without extension)
    2                                    <- line 2: number of rows that follow
    345.12 211.40 30.25 38.80 0.951234   <- x y w h score; x, y = top-left corner, w = x2 - x1, h = y2 - y1
    ...                                     (original-image pixels, rows sorted by descending score)

**Landmarks table** ``landmarks.tsv`` at the root of the output folder: a tab-separated file with a header row
``image rank score lex ley rex rey nx ny lmx lmy rmx rmy``: ``image`` is the prediction file's path relative to
the root without ``.txt``, ``rank`` the 1-based row of the box in that file, then the score and the x, y of left
eye, right eye, nose, left and right mouth corner in original-image pixels. "Left" is the image's left for an upright
face (the WIDER FACE / RetinaFace annotation convention the model was trained with), not the subject's left.

Unlike the model zoo's test, only the boxes NMS keeps are written (no stale soft-NMS leftovers), and line 2 is the
true count. :func:`write_tree` builds the whole tree in a staging folder next to ``out_dir`` and then swaps it in,
so readers never see a half-written tree; :func:`write_image_result` writes single files atomically.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from centerface_flow.errors import UserError
from centerface_flow.inference.candidates import Candidates
from centerface_flow.io import (
    atomic_write_text,
    discarded_on_error,
    make_staging_dir,
    remove_stale_staging,
    write_error,
)
from centerface_flow.postprocess.nms import NMS_METHODS, hard_nms_vote, nms

__all__ = [
    "LANDMARKS_FILE",
    "LANDMARKS_HEADER",
    "TREE_MARKER",
    "PostprocessConfig",
    "format_landmark_rows",
    "format_rows_python",
    "format_wider",
    "select",
    "tree_manifest",
    "update_landmarks_table",
    "write_image_result",
    "write_tree",
]

log = logging.getLogger(__name__)

LANDMARKS_FILE = "landmarks.tsv"
LANDMARKS_HEADER = "image\trank\tscore\tlex\tley\trex\trey\tnx\tny\tlmx\tlmy\trmx\trmy\n"
#: Written into every tree :func:`write_tree` makes; only folders carrying it are ever replaced.
TREE_MARKER = ".centerface-predictions"


@dataclass(frozen=True)
class PostprocessConfig:
    """Settings of the candidates → detections step.

    ``nms_iou`` is the IoU above which hard NMS removes a box and linear soft-NMS decays it (``Nt``);
    ``nms_plus_one`` adds one pixel to widths and heights in NMS overlaps (the model zoo's and the WIDER evaluator's
    convention; the released model's authors use continuous boxes, ``False``); ``sigma`` is the gaussian soft-NMS
    width; ``soft_threshold`` drops boxes whose decayed score falls below it (the model zoo's ``threshold=0.001``);
    ``box_voting`` (hard NMS only) replaces each kept box by the score-weighted mean of itself and the candidates it
    suppressed, which merges the passes of test-time augmentation instead of picking one of them;
    ``max_dets`` caps the detections per image (0 = no cap); ``clip`` clips boxes to the image before NMS.
    """

    score_threshold: float = 0.02
    nms: str = "hard"
    nms_iou: float = 0.3
    nms_plus_one: bool = False
    box_voting: bool = False
    sigma: float = 0.5
    soft_threshold: float = 0.001
    max_dets: int = 0
    clip: bool = True

    def __post_init__(self) -> None:
        if self.nms not in NMS_METHODS:
            raise UserError(f"nms: unknown method {self.nms!r}; choose one of {', '.join(NMS_METHODS)}")
        if not 0.0 <= self.score_threshold < 1.0:
            raise UserError(f"score_threshold: must be in [0, 1), got {self.score_threshold}")
        if not 0.0 <= self.nms_iou <= 1.0:
            raise UserError(f"nms_iou: must be in [0, 1], got {self.nms_iou}")
        if not self.sigma > 0:
            raise UserError(f"sigma: must be positive, got {self.sigma}")
        if not 0.0 <= self.soft_threshold < 1.0:
            raise UserError(f"soft_threshold: must be in [0, 1), got {self.soft_threshold}")
        if self.box_voting and self.nms != "hard":
            raise UserError(f"box_voting: needs nms 'hard' (soft-NMS keeps overlapping boxes), got {self.nms!r}")
        if self.max_dets < 0:
            raise UserError(f"max_dets: must be >= 0, got {self.max_dets}")


def select(boxes: np.ndarray, scores: np.ndarray, landmarks: np.ndarray, size: tuple[int, int],
           cfg: PostprocessConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Final detections of one image (``size`` = (width, height)).

    boxes (n, 4) xyxy, scores (n,), landmarks (n, 5, 2) → the same, sorted by descending final score.
    """
    mask = scores >= cfg.score_threshold
    passing = int(np.count_nonzero(mask))
    if mask[:passing].all():  # candidates come sorted by score: the passing rows are a prefix, no copies needed
        boxes, scores, landmarks = boxes[:passing], scores[:passing], landmarks[:passing]
    else:
        boxes, scores, landmarks = boxes[mask], scores[mask], landmarks[mask]
    if cfg.clip and len(boxes):
        boxes = boxes.copy()
        np.clip(boxes[:, 0::2], 0, size[0], out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, size[1], out=boxes[:, 1::2])
    offset = 1.0 if cfg.nms_plus_one else 0.0
    if cfg.box_voting:
        keep, kept_boxes = hard_nms_vote(boxes, scores, cfg.nms_iou, offset)
        final = scores[keep]
    else:
        keep, final = nms(boxes, scores, cfg.nms, cfg.nms_iou, cfg.sigma, cfg.soft_threshold, offset)
        kept_boxes = boxes[keep]
    if cfg.max_dets:
        keep, final, kept_boxes = keep[: cfg.max_dets], final[: cfg.max_dets], kept_boxes[: cfg.max_dets]
    return kept_boxes, final, landmarks[keep]


try:
    from centerface_flow._kernels.table_format import format_rows as _format_rows_kernel
except ImportError:  # pragma: no cover - only when the package was installed without building the kernels
    _format_rows_kernel = None

_WIDER_DECIMALS = np.array([2, 2, 2, 2, 6], np.int32)
_LANDMARK_DECIMALS = np.array([0, 6] + [2] * 10, np.int32)


def format_rows_python(values: np.ndarray, decimals: np.ndarray, sep: str) -> str:
    """Rows of ``values`` (R, C) as ``"%.{decimals[c]}f"`` fields joined by ``sep``, one line each."""
    line = sep.join(f"%.{int(d)}f" for d in decimals) + "\n"
    return (line * len(values)) % tuple(np.asarray(values, np.float64).ravel().tolist())


def _format_rows(values: np.ndarray, decimals: np.ndarray, sep: str) -> str:
    if _format_rows_kernel is None:
        return format_rows_python(values, decimals, sep)
    return _format_rows_kernel(np.ascontiguousarray(values, np.float64), decimals, sep.encode()).decode()


def format_wider(name: str, boxes: np.ndarray, scores: np.ndarray) -> str:
    """The WIDER prediction file text for one image: name, count, ``x y w h score`` rows."""
    n = len(scores)
    rows = np.empty((n, 5), np.float64)
    rows[:, :2] = boxes[:, :2]
    rows[:, 2:4] = boxes[:, 2:4] - boxes[:, :2]
    rows[:, 4] = scores
    return f"{name}\n{n}\n" + _format_rows(rows, _WIDER_DECIMALS, " ")


def format_landmark_rows(image: str, scores: np.ndarray, landmarks: np.ndarray) -> str:
    """Rows of ``landmarks.tsv`` for one image (no header)."""
    n = len(scores)
    if not n:
        return ""
    rows = np.empty((n, 12), np.float64)
    rows[:, 0] = np.arange(1, n + 1)
    rows[:, 1] = scores
    rows[:, 2:] = landmarks.reshape(n, 10)
    prefix = image + "\t"
    return prefix + _format_rows(rows, _LANDMARK_DECIMALS, "\t")[:-1].replace("\n", "\n" + prefix) + "\n"


def _relative_txt(path: str) -> str:
    """``0--Parade/x.jpg`` → ``0--Parade/x`` (the prediction file path without ``.txt``)."""
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts:
        raise UserError(f"candidates image path {path!r} must be relative and stay inside the image root")
    return str(p.with_suffix(""))


def tree_manifest(out_dir: str | os.PathLike) -> list[str] | None:
    """The files (POSIX paths relative to ``out_dir``) that :func:`write_tree` wrote there, from its marker;
    ``None`` when ``out_dir`` has no marker or an older one without the list."""
    marker = Path(out_dir) / TREE_MARKER
    try:
        lines = marker.read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return None
    return lines[1:] if len(lines) > 1 else None


def _foreign_files(out_dir: Path) -> list[str]:
    """Files under an earlier tree that :func:`write_tree` did not write there (a user's, or an input)."""
    listed = tree_manifest(out_dir)
    ours = {TREE_MARKER, LANDMARKS_FILE, *(listed or ())}
    foreign = []
    for path in sorted(out_dir.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            continue
        rel = path.relative_to(out_dir).as_posix()
        legacy_ok = listed is None and path.suffix == ".txt" and not path.is_symlink()
        if rel not in ours and not legacy_ok:
            foreign.append(rel)
    return foreign


def _check_replaceable(out_dir: Path) -> None:
    """Refuse an ``out_dir`` that is not absent, empty or an earlier tree holding only the files we wrote there,
    so that no input or file of the user's is ever deleted with it."""
    if out_dir.is_symlink():
        raise UserError(f"{out_dir}: is a symlink; a prediction tree replaces a real folder (give its target)")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise UserError(f"{out_dir}: exists and is not a folder")
        if any(out_dir.iterdir()) and not (out_dir / TREE_MARKER).exists():
            raise UserError(f"{out_dir}: folder exists, is not empty and was not written by `centerface "
                            "postprocess`; refusing to replace it (choose another --out or remove it)")
        foreign = _foreign_files(out_dir)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise UserError(f"{out_dir}: an earlier prediction tree that also holds files `centerface postprocess` "
                            f"did not write ({shown}); refusing to replace it and delete them (move them out or "
                            "choose another --out)")


def _replace_tree(staging: Path, out_dir: Path) -> None:
    """Move ``staging`` to ``out_dir``, replacing an earlier tree (see :func:`_check_replaceable`)."""
    _check_replaceable(out_dir)
    if out_dir.exists():
        old = make_staging_dir(out_dir, "old")
        os.replace(out_dir, old / "tree")
        os.replace(staging, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out_dir)


def write_tree(cands: Candidates, out_dir: str | os.PathLike, cfg: PostprocessConfig) -> dict:
    """Write the WIDER prediction tree and ``landmarks.tsv`` for all images of ``cands`` into ``out_dir``.

    Images listed as failed get no file. The marker file lists every file written, so that the evaluation can
    tell a tree missing a file from a subset, and a rerun replaces only what it wrote. Leftovers of a killed
    earlier run (``.NAME.tmp-*``, ``.NAME.old-*``) are removed first. Returns a summary dict (images,
    detections, seconds, settings).
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    _check_replaceable(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(out_dir)
        staging = make_staging_dir(out_dir)
    except OSError as exc:
        raise write_error(out_dir, exc) from exc
    n_dets = 0
    with discarded_on_error(staging, out_dir):
        lm_parts = [LANDMARKS_HEADER]
        made_dirs: set[Path] = set()
        written = []
        for i, rel in enumerate(cands.paths):
            boxes, scores, landmarks = cands.image(i)
            size = (int(cands.sizes[i, 0]), int(cands.sizes[i, 1]))
            boxes, scores, landmarks = select(boxes, scores, landmarks, size, cfg)
            stem = _relative_txt(rel)
            target = staging / f"{stem}.txt"
            if target.parent not in made_dirs:
                target.parent.mkdir(parents=True, exist_ok=True)
                made_dirs.add(target.parent)
            target.write_text(format_wider(PurePosixPath(stem).name, boxes, scores), encoding="utf-8")
            written.append(f"{stem}.txt")
            lm_parts.append(format_landmark_rows(stem, scores, landmarks))
            n_dets += len(scores)
        (staging / LANDMARKS_FILE).write_text("".join(lm_parts), encoding="utf-8")
        (staging / TREE_MARKER).write_text("written by centerface postprocess\n" + "".join(f"{w}\n" for w in written),
                                           encoding="utf-8")
        _replace_tree(staging, out_dir)
    summary = {"images": len(cands.paths), "detections": n_dets, "failed_images": len(cands.failed),
               "seconds": round(time.perf_counter() - start, 3), **asdict(cfg)}
    log.info("wrote %d detections for %d images to %s", n_dets, len(cands.paths), out_dir)
    return summary


def write_image_result(out_dir: str | os.PathLike, name: str, boxes: np.ndarray, scores: np.ndarray) -> Path:
    """Write ``out_dir/<name>.txt`` (WIDER format) atomically; return its path."""
    path = Path(out_dir) / f"{name}.txt"
    atomic_write_text(path, format_wider(PurePosixPath(name).name, boxes, scores))
    return path


def update_landmarks_table(out_dir: str | os.PathLike, blocks: dict[str, str]) -> Path:
    """Put the rows of the images in ``blocks`` ({image: rows from :func:`format_landmark_rows`}) into
    ``out_dir/landmarks.tsv``, replacing earlier rows of those images and keeping the others (atomic write)."""
    path = Path(out_dir) / LANDMARKS_FILE
    kept = []
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [ln for ln in lines[1:] if ln.split("\t", 1)[0] not in blocks]
    atomic_write_text(path, LANDMARKS_HEADER + "".join(kept) + "".join(blocks.values()))
    return path
