"""WIDER FACE AP under the two protocols: score normalisation, matching, 1000-threshold PR curve, VOC AP.

Both protocols follow the same steps (the MATLAB ``eval_tools`` and its Python port share the algorithm):

1. min-max normalise all scores of the tree at once: ``(s - min) / (max - min)``. The initial extremes differ:
   the Python port starts from ``min = 1, max = 0`` (so scores all above 1 are not normalised to 0..1), MATLAB from
   the largest and smallest positive float32. All scores equal gives NaN scores and AP 0, as in both references.
2. within every image, visit the detections by descending raw score (stable: ties keep file order). MATLAB sorts
   in ``read_pred.m``; the Python port does not sort and silently miscounts files whose rows are not sorted —
   here unsorted files give the same AP as sorted ones in both protocols.
3. match each detection to a face (``overlaps.match``, rules there). A detection matched to a face outside the
   setting's ``gt_list`` is ignored; the first detection matched to a counted face is a true positive; every other
   non-ignored detection is a false positive. Images without faces are skipped (their detections count nowhere).
4. for the thresholds ``1 - t/1000`` (t = 1..1000), count non-ignored detections and true positives with a
   normalised score >= threshold over all images: precision = TP / detections, recall = TP / faces, where faces
   counts the setting's faces of all evaluated images.
5. AP = VOC all-point area under the precision envelope (``voc_ap`` / ``VOCap.m``).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np

from centerface_flow.evaluation.groundtruth import SETTINGS, GroundTruth
from centerface_flow.evaluation.overlaps import match
from centerface_flow.evaluation.predictions import Predictions

__all__ = ["PROTOCOLS", "THRESH_NUM", "EvalResult", "SettingResult", "evaluate_arrays", "image_set_digest", "thresholds",
           "voc_ap"]

log = logging.getLogger(__name__)

PROTOCOLS = ("python", "official")
THRESH_NUM = 1000
_INITIAL_EXTREMES = {  # (min, max) before the first score is seen
    "python": (1.0, 0.0),
    "official": (float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny)),
}


@dataclass
class SettingResult:
    """One setting's result. PR arrays are (THRESH_NUM,) float64, by descending score threshold."""

    setting: str
    ap: float
    faces: int
    images: int
    thresholds: np.ndarray = field(repr=False)
    precision: np.ndarray = field(repr=False)
    recall: np.ndarray = field(repr=False)


@dataclass
class EvalResult:
    """AP and PR curves of one prediction tree for easy, medium and hard."""

    protocol: str
    iou: float
    subset: bool
    images: int
    settings: dict[str, SettingResult]
    #: fingerprint of the evaluated images (:func:`image_set_digest`): equal counts can hide different images
    image_set: str = ""

    def ap(self) -> dict[str, float]:
        """setting -> AP."""
        return {name: s.ap for name, s in self.settings.items()}


def thresholds(thresh_num: int = THRESH_NUM) -> np.ndarray:
    """(thresh_num,) float64 score thresholds ``1 - t/thresh_num``, t = 1..thresh_num, as both references compute."""
    return np.array([1 - (t + 1) / thresh_num for t in range(thresh_num)], dtype=np.float64)


def voc_ap(recall: np.ndarray, precision: np.ndarray, ignore_nan: bool = False) -> float:
    """VOC all-point AP. recall, precision: (T,) float64. NaN precision (no detection above a threshold) is
    propagated down the envelope like ``np.maximum`` (Python port) or skipped like MATLAB's ``max``
    (``ignore_nan``); both give the same AP because NaN only occurs where recall is 0."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    envelope = (np.fmax if ignore_nan else np.maximum).accumulate(mpre[::-1])[::-1]
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * envelope[i + 1]))


def normalise_scores(scores: np.ndarray, protocol: str) -> np.ndarray:
    """(R,) raw scores -> (R,) normalised scores (see the module docstring, step 1)."""
    lo, hi = _INITIAL_EXTREMES[protocol]
    if len(scores):
        lo, hi = min(lo, float(scores.min())), max(hi, float(scores.max()))
    if hi - lo == 0:
        log.warning("all detection scores are equal (%r): every normalised score is NaN and every AP is 0", lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (scores - lo) / (hi - lo)


def evaluate_arrays(gt: GroundTruth, preds: Predictions, iou: float = 0.5, protocol: str = "python",
                    subset: bool = False) -> EvalResult:
    """Evaluate detections already read (``preds.present`` selects the evaluated images of ``gt``)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    gt = gt.restrict(preds.present) if not preds.present.all() else gt
    n_images = gt.n_images
    counts = np.diff(preds.offsets)
    image_of_row = np.repeat(np.arange(n_images), counts)
    order = np.lexsort((-preds.scores, image_of_row))  # stable: by image, then descending score, then file order
    boxes, scores = preds.boxes[order], preds.scores[order]
    best = match(protocol, boxes, preds.offsets, gt.faces, gt.face_offsets, iou)

    norm = normalise_scores(scores, protocol)
    thr = thresholds()
    # first threshold index t with norm >= thr[t]; rows never above a threshold (or NaN) get THRESH_NUM
    first = np.searchsorted(-thr, -norm, side="left")
    first[np.isnan(norm)] = THRESH_NUM
    has_faces = np.diff(gt.face_offsets) > 0
    counted = has_faces[image_of_row]
    matched = best >= 0

    results = {}
    for setting in SETTINGS:
        keep = gt.keep[setting]
        kept_match = np.zeros_like(matched)
        kept_match[matched] = keep[best[matched]]
        ignored = matched & ~kept_match
        tp = np.zeros(len(best), dtype=bool)
        _, first_rows = np.unique(best[kept_match], return_index=True)
        tp[np.flatnonzero(kept_match)[first_rows]] = True
        det_rows = counted & ~ignored
        n_det = np.cumsum(np.bincount(first[det_rows], minlength=THRESH_NUM + 1)[:THRESH_NUM])
        n_tp = np.cumsum(np.bincount(first[counted & tp], minlength=THRESH_NUM + 1)[:THRESH_NUM])
        faces = int(keep.sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = n_tp / n_det.astype(np.float64)
            recall = n_tp / np.float64(faces)
        ap = voc_ap(recall, precision, ignore_nan=protocol == "official") if faces else float("nan")
        results[setting] = SettingResult(setting, ap, faces, n_images, thr, precision, recall)
    return EvalResult(protocol=protocol, iou=float(iou), subset=subset, images=n_images, settings=results,
                      image_set=image_set_digest(gt.image_keys()))


def image_set_digest(keys: list[tuple[str, str]]) -> str:
    """16 hex digits identifying a set of (event, image) keys, independent of their order."""
    text = "\n".join(sorted(f"{event}/{name}" for event, name in keys))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
