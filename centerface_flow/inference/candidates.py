"""The candidates store: everything the test stage computes before NMS, for one model × one image set.

One ``.npz`` file (numpy's zip of ``.npy`` arrays, read without pickle) with these arrays:

=============  ==================  ==========================================================================
key            shape / dtype       meaning
=============  ==================  ==========================================================================
``format``     () str              ``"centerface-candidates/1"``
``paths``      (I,) str            image path relative to the image root, POSIX, e.g. ``0--Parade/0_x_1.jpg``
``sizes``      (I, 2) int32        original image (width, height) in pixels
``offsets``    (I + 1,) int64      candidates of image ``i`` are rows ``offsets[i]:offsets[i + 1]``
``boxes``      (M, 4) float32      x1, y1, x2, y2 in original-image pixels (not clipped)
``scores``     (M,) float32        heatmap value (sigmoid output) of the candidate's cell, in [0, 1]
``landmarks``  (M, 5, 2) float32   x, y of left eye, right eye, nose, left / right mouth corner, original pixels
``passes``     (M,) uint8          index into ``meta["passes"]``: which (scale, flip) pass produced the row
``failed``     (F,) str            relative paths of images that could not be read (no rows for them)
``meta``       () str              JSON: weights, backend, inference settings, model meta, passes, pass_seconds
=============  ==================  ==========================================================================

Within an image, rows are sorted by descending score. With ``decode: cells`` a pass stores every heatmap cell
scoring at least ``min_score`` (thousands on crowd images: about 5,600 per image on average, 207 MB, for the 610
shared WIDER val images at 0.01); with ``decode: peaks`` at most ``top_k`` per pass. No heatmaps are stored.
"""
from __future__ import annotations

import json
import logging
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from centerface_flow.errors import UserError
from centerface_flow.io import atomic_write

__all__ = ["FORMAT", "Candidates", "CandidatesBuilder", "load_candidates", "save_candidates"]

log = logging.getLogger(__name__)

FORMAT = "centerface-candidates/1"
_KEYS = ("format", "paths", "sizes", "offsets", "boxes", "scores", "landmarks", "passes", "failed", "meta")


@dataclass
class Candidates:
    """Decoded candidates of a set of images (see the module docstring for the arrays)."""

    paths: list[str]
    sizes: np.ndarray
    offsets: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
    passes: np.ndarray
    meta: dict = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of image ``i``: boxes (n, 4), scores (n,), landmarks (n, 5, 2)."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.boxes[a:b], self.scores[a:b], self.landmarks[a:b]


class CandidatesBuilder:
    """Collects per-image candidates, then :meth:`build` returns a :class:`Candidates`."""

    def __init__(self) -> None:
        self._paths: list[str] = []
        self._sizes: list[tuple[int, int]] = []
        self._counts: list[int] = []
        self._boxes: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []
        self._landmarks: list[np.ndarray] = []
        self._passes: list[np.ndarray] = []
        self.failed: list[str] = []

    def add(self, path: str, size: tuple[int, int], boxes: np.ndarray, scores: np.ndarray, landmarks: np.ndarray,
            passes: np.ndarray | None = None) -> None:
        """Add one image: ``size`` = (width, height); boxes (n, 4), scores (n,), landmarks (n, 5, 2)."""
        scores = np.asarray(scores, np.float32).reshape(-1)
        order = np.argsort(-scores, kind="stable")
        n = len(scores)
        self._paths.append(str(path))
        self._sizes.append((int(size[0]), int(size[1])))
        self._counts.append(n)
        self._boxes.append(np.asarray(boxes, np.float32).reshape(n, 4)[order])
        self._scores.append(scores[order])
        self._landmarks.append(np.asarray(landmarks, np.float32).reshape(n, 5, 2)[order])
        p = np.zeros(n, np.uint8) if passes is None else np.asarray(passes, np.uint8).reshape(n)
        self._passes.append(p[order])

    def build(self, meta: dict | None = None) -> Candidates:
        offsets = np.zeros(len(self._counts) + 1, np.int64)
        np.cumsum(self._counts, out=offsets[1:])
        cat = (lambda parts, shape, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(shape, dt))
        return Candidates(
            paths=list(self._paths),
            sizes=np.asarray(self._sizes, np.int32).reshape(-1, 2),
            offsets=offsets,
            boxes=cat(self._boxes, (0, 4), np.float32),
            scores=cat(self._scores, (0,), np.float32),
            landmarks=cat(self._landmarks, (0, 5, 2), np.float32),
            passes=cat(self._passes, (0,), np.uint8),
            meta=dict(meta or {}),
            failed=list(self.failed),
        )


def save_candidates(path: str | os.PathLike, cands: Candidates) -> None:
    """Write ``cands`` to ``path`` (.npz, uncompressed for fast loading) atomically."""
    arrays = {
        "format": np.array(FORMAT),
        "paths": np.array(cands.paths, dtype=str) if cands.paths else np.zeros(0, dtype="<U1"),
        "sizes": np.asarray(cands.sizes, np.int32).reshape(-1, 2),
        "offsets": np.asarray(cands.offsets, np.int64),
        "boxes": np.asarray(cands.boxes, np.float32).reshape(-1, 4),
        "scores": np.asarray(cands.scores, np.float32).reshape(-1),
        "landmarks": np.asarray(cands.landmarks, np.float32).reshape(-1, 5, 2),
        "passes": np.asarray(cands.passes, np.uint8).reshape(-1),
        "failed": np.array(cands.failed, dtype=str) if cands.failed else np.zeros(0, dtype="<U1"),
        "meta": np.array(json.dumps(cands.meta, sort_keys=True, default=str)),
    }
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)
    log.info("wrote %d candidates of %d images to %s", len(arrays["scores"]), len(cands.paths), path)


def _read_arrays(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of an ``.npz``; large uncompressed members are memory-mapped read-only instead of read
    (a test-stage file holds millions of rows, of which post-processing reads the passing prefix of each image)."""
    with zipfile.ZipFile(path) as archive:
        infos = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        missing = [k for k in keys if k not in infos]
        if missing:
            raise UserError(f"{path}: not a candidates file (missing arrays: {', '.join(missing)})")
        arrays = {}
        with open(path, "rb") as handle:
            for key in keys:
                info = infos[key]
                if info.compress_type != zipfile.ZIP_STORED or info.file_size < (1 << 20):
                    with archive.open(info) as member:
                        arrays[key] = np.lib.format.read_array(member, allow_pickle=False)
                    continue
                handle.seek(info.header_offset)
                local = handle.read(30)
                if local[:4] != b"PK\x03\x04":
                    raise ValueError(f"array {key!r}: bad zip entry")
                handle.seek(info.header_offset + 30 + int.from_bytes(local[26:28], "little")
                            + int.from_bytes(local[28:30], "little"))
                version = np.lib.format.read_magic(handle)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(handle)
                if dtype.hasobject:
                    raise ValueError(f"array {key!r} holds Python objects")
                arrays[key] = np.memmap(path, dtype=dtype, mode="r", offset=handle.tell(), shape=shape,
                                        order="F" if fortran else "C")
    return arrays


def load_candidates(path: str | os.PathLike) -> Candidates:
    """Read a candidates file; raise :class:`UserError` naming the file and the problem if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such candidates file (make one with `centerface infer`)")
    try:
        arrays = _read_arrays(path, _KEYS)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable .npz candidates file ({exc})") from exc
    if str(arrays["format"]) != FORMAT:
        raise UserError(f"{path}: key 'format' is {str(arrays['format'])!r}, expected {FORMAT!r}")
    n_img, offsets, n_rows = len(arrays["paths"]), arrays["offsets"], len(arrays["scores"])
    checks = [
        (arrays["sizes"].shape == (n_img, 2), "sizes"),
        (offsets.shape == (n_img + 1,) and offsets[0] == 0 and offsets[-1] == n_rows and np.all(np.diff(offsets) >= 0),
         "offsets"),
        (arrays["boxes"].shape == (n_rows, 4), "boxes"),
        (arrays["landmarks"].shape == (n_rows, 5, 2), "landmarks"),
        (arrays["passes"].shape == (n_rows,), "passes"),
    ]
    for ok, key in checks:
        if not ok:
            raise UserError(f"{path}: array {key!r} is inconsistent with 'paths'/'scores' (corrupt file?)")
    boxes, scores = arrays["boxes"], arrays["scores"]
    values = [(np.isfinite(boxes).all(axis=1), "boxes", "a NaN or infinite coordinate"),
              (np.isfinite(scores), "scores", "a NaN or infinite score"),
              (np.isfinite(arrays["landmarks"]).all(axis=(1, 2)), "landmarks", "a NaN or infinite coordinate"),
              ((boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1]), "boxes", "a negative width or height")]
    for ok, key, what in values:
        if not ok.all():
            row = int(np.argmin(ok))
            image = arrays["paths"][int(np.searchsorted(offsets, row, side="right")) - 1]
            raise UserError(f"{path}: array {key!r} row {row} (image {image}) has {what}; "
                            f"{int((~ok).sum())} bad row(s) in all (corrupt file?)")
    if n_img and arrays["sizes"].min() <= 0:
        raise UserError(f"{path}: array 'sizes' holds a non-positive image size (corrupt file?)")
    try:
        meta = json.loads(str(arrays["meta"]))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: key 'meta' is not valid JSON ({exc})") from exc
    return Candidates(
        paths=arrays["paths"].tolist(),
        sizes=arrays["sizes"].astype(np.int32),
        offsets=offsets.astype(np.int64),
        boxes=arrays["boxes"].astype(np.float32, copy=False),
        scores=arrays["scores"].astype(np.float32, copy=False),
        landmarks=arrays["landmarks"].astype(np.float32, copy=False),
        passes=arrays["passes"].astype(np.uint8, copy=False),
        meta=meta,
        failed=arrays["failed"].tolist(),
    )
