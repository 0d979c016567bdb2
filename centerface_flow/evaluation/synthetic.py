"""Deterministic synthetic prediction trees made from the ground truth, for tests and benchmarks.

Every face is kept with probability ``keep``, its box jittered (position and size), and scored higher on average
than the added false boxes (random boxes, some near faces). Rows are shuffled unless ``sorted_rows``. Numbers are
written with a few decimals, so the tree exercises score ties, sub-pixel boxes and unsorted files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from centerface_flow.evaluation.groundtruth import GroundTruth

__all__ = ["synthetic_detections", "write_tree"]


def synthetic_detections(gt: GroundTruth, seed: int, keep: float = 0.85, jitter: float = 0.12,
                         extra_per_image: float = 8.0) -> list[np.ndarray]:
    """Detections per ground-truth image: a list of (N_i, 5) float64 ``x y w h score`` arrays (rounded)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(gt.n_images):
        faces = gt.faces[gt.face_offsets[i]:gt.face_offsets[i + 1]].astype(np.float64)
        faces = faces[rng.random(len(faces)) < keep]
        size = np.maximum(faces[:, 2:4], 1.0)
        xy = faces[:, :2] + rng.normal(0.0, jitter, (len(faces), 2)) * size
        wh = size * np.exp(rng.normal(0.0, jitter, (len(faces), 2)))
        score = np.clip(rng.beta(4.0, 1.5, len(faces)), 0.0, 1.0)
        n_extra = rng.poisson(extra_per_image)
        extent = np.maximum(faces[:, :2].max(axis=0) + size.max(axis=0), 64.0) if len(faces) else np.array([1024.0, 768.0])
        e_wh = np.exp(rng.uniform(np.log(2.0), np.log(200.0), (n_extra, 2)))
        e_xy = rng.uniform(0.0, 1.0, (n_extra, 2)) * extent
        if len(faces):  # half of the false boxes sit near a face: shifted, shrunk or grown
            near = rng.random(n_extra) < 0.5
            pick = rng.integers(0, len(faces), n_extra)
            e_wh[near] = size[pick[near]] * np.exp(rng.normal(0.0, 0.6, (int(near.sum()), 2)))
            e_xy[near] = xy[pick[near]] + rng.normal(0.0, 0.5, (int(near.sum()), 2)) * size[pick[near]]
        e_score = rng.beta(1.2, 4.0, n_extra)
        rows = np.concatenate([np.column_stack([xy, wh, score]), np.column_stack([e_xy, e_wh, e_score])])
        rows[:, :4] = np.round(rows[:, :4], 1)
        rows[:, 4] = np.round(rows[:, 4], 4)
        out.append(rows[rng.permutation(len(rows))])
    return out


def write_tree(gt: GroundTruth, detections: list[np.ndarray], out_dir: str | Path, sorted_rows: bool = False,
               images: np.ndarray | None = None, score_decimals: int = 4) -> Path:
    """Write ``detections`` (one array per ground-truth image) as ``out_dir/<event>/<image>.txt``.

    sorted_rows: write each file by descending score (stable); images: (I,) bool, only those images get a file;
    boxes are written with 1 decimal, scores with ``score_decimals``.
    """
    out_dir = Path(out_dir)
    for i, (event, name) in enumerate(gt.image_keys()):
        if images is not None and not images[i]:
            continue
        rows = detections[i]
        if sorted_rows:
            rows = rows[np.argsort(-rows[:, 4], kind="stable")]
        (out_dir / event).mkdir(parents=True, exist_ok=True)
        body = "".join(f"{x:.1f} {y:.1f} {w:.1f} {h:.1f} {s:.{score_decimals}f}\n" for x, y, w, h, s in rows.tolist())
        (out_dir / event / f"{name}.txt").write_text(f"{event}/{name}.jpg\n{len(rows)}\n{body}")
    return out_dir


def write_ground_truth(gt: GroundTruth, out_dir: str | Path) -> Path:
    """Write ``gt`` as the four official ``.mat`` files (same cell structure and int32 boxes) to ``out_dir``.

    Used to build small ground-truth folders for tests and to run the reference tools on a reduced image list.
    """
    from scipy.io import savemat

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_events = len(gt.events)

    def cells(per_event: list[list]) -> np.ndarray:
        outer = np.empty((n_events, 1), dtype=object)
        for e, items in enumerate(per_event):
            inner = np.empty((len(items), 1), dtype=object)
            for j, item in enumerate(items):
                inner[j, 0] = item
            outer[e, 0] = inner
        return outer

    images = [[] for _ in range(n_events)]
    for i, e in enumerate(gt.image_event):
        images[e].append(i)
    event_list = np.empty((n_events, 1), dtype=object)
    for e, name in enumerate(gt.events):
        event_list[e, 0] = name
    faces = [[gt.faces[gt.face_offsets[i]:gt.face_offsets[i + 1]].astype(np.int32) for i in ims] for ims in images]
    common = {
        "event_list": event_list,
        "file_list": cells([[gt.image_names[i] for i in ims] for ims in images]),
        "face_bbx_list": cells(faces),
    }
    savemat(out_dir / "wider_face_val.mat", common)
    for setting, keep in gt.keep.items():
        lists = [[(np.flatnonzero(keep[gt.face_offsets[i]:gt.face_offsets[i + 1]]) + 1).astype(np.uint16)[:, None]
                  for i in ims] for ims in images]
        savemat(out_dir / f"wider_{setting}_val.mat", {**common, "gt_list": cells(lists)})
    return out_dir
