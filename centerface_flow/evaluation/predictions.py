"""Reading a WIDER FACE prediction tree ``<pred_dir>/<event>/<image>.txt`` with strict validation.

File format (one file per image): line 1 the image name (``name``, ``name.jpg`` or ``event/name.jpg``; its last
path component without extension must be the file's stem), line 2 the number of detections ``N``, then exactly
``N`` rows ``x y w h score``. Rules:

* a file with no non-blank character means "no detections" (the MATLAB tools treat it the same way);
* ``N = 0`` with no rows means no detections;
* non-numeric values, fewer or more than 5 columns, a negative width or height, a NaN or infinite value, and a count
  line that disagrees with the rows are errors naming the file and line;
* every ``.txt`` file must belong to a ground-truth image; other files are ignored;
* a tree written by ``centerface postprocess`` lists its files in its marker file; every listed file must be there.

Without ``subset``, every ground-truth image needs a file; with it, the images without a file are dropped from
the evaluation (their faces are not counted).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from centerface_flow.errors import UserError
from centerface_flow.evaluation.groundtruth import GroundTruth

__all__ = ["Predictions", "read_prediction_tree"]

log = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Predictions:
    """Detections of the evaluated images, concatenated in ground-truth image order, file order within an image.

    Attributes
    ----------
    present : (I,) bool, ground-truth images that have a prediction file
    boxes : (R, 4) float64 xywh of the present images
    scores : (R,) float64 raw scores
    offsets : (n_present + 1,) intp, rows of the k-th present image
    """

    present: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    offsets: np.ndarray


def _check_name(line1: str, path: Path) -> None:
    stem = line1.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in _IMAGE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    if stem != path.stem:
        raise UserError(f"{path}:1: the image name {line1!r} does not match the file name {path.name!r}")


def _list_tree(pred_dir: Path) -> dict[str, set[str]]:
    """event folder -> stems of its ``.txt`` files."""
    tree = {}
    with os.scandir(pred_dir) as entries:
        for entry in entries:
            if entry.is_dir():
                with os.scandir(entry.path) as files:
                    tree[entry.name] = {f.name[:-4] for f in files if f.name.endswith(".txt") and f.is_file()}
    return tree


def _describe(keys: list[str], total: int) -> str:
    shown = ", ".join(keys[:5])
    return shown + (f" and {total - 5} more" if total > 5 else "")


def _check_manifest(pred_dir: Path) -> None:
    """A tree written by ``centerface postprocess`` lists its files in its marker: a listed file that is gone
    (deleted by hand, a partial copy) would silently shrink the evaluated image set under ``subset``."""
    from centerface_flow.postprocess.predictions import TREE_MARKER, tree_manifest

    listed = tree_manifest(pred_dir)
    if not listed:
        return
    missing = [rel for rel in listed if not (pred_dir / rel).is_file()]
    if missing:
        raise UserError(f"--pred {pred_dir}: {len(missing)} of the {len(listed)} prediction files written there by "
                        f"`centerface postprocess` (listed in {TREE_MARKER}) are missing: "
                        f"{_describe(missing, len(missing))}. The tree is incomplete: write it again (centerface "
                        "postprocess; in the workflow, delete the folder or run snakemake -R postprocess_predictions)")


def read_prediction_tree(pred_dir: str | Path, gt: GroundTruth, subset: bool = False) -> Predictions:
    """Read every prediction file of the ground-truth images from ``pred_dir``.

    Raises ``UserError`` for a missing folder, files that are not ground-truth images, a malformed file (with file
    and line) and, unless ``subset``, missing event folders or files (naming the first few).
    """
    from centerface_flow._kernels.wider_parse import parse_prediction

    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise UserError(f"--pred {pred_dir}: not a directory")
    _check_manifest(pred_dir)
    tree = _list_tree(pred_dir)
    known = {}
    for event, name in gt.image_keys():
        known.setdefault(event, set()).add(name)
    unknown = sorted(f"{event}/{stem}.txt" for event, stems in tree.items() for stem in stems - known.get(event, set()))
    if unknown:
        raise UserError(f"--pred {pred_dir}: {len(unknown)} prediction file(s) are not WIDER FACE val images of the "
                        f"ground truth: {_describe(unknown, len(unknown))}")
    keys = gt.image_keys()
    present = np.array([name in tree.get(event, ()) for event, name in keys], dtype=bool)
    if not present.any():
        raise UserError(f"--pred {pred_dir}: no prediction file of any ground-truth image "
                        f"(expected <event>/<image>.txt, e.g. {keys[0][0]}/{keys[0][1]}.txt)")
    if not subset and not present.all():
        missing_events = sorted({event for event, _ in keys} - set(tree))
        missing = [f"{event}/{name}.txt" for (event, name), p in zip(keys, present) if not p]
        what = f"{len(missing)} of {len(keys)} prediction files are missing: {_describe(missing, len(missing))}"
        if missing_events:
            what += f" ({len(missing_events)} event folder(s) missing: {_describe(missing_events, len(missing_events))})"
        raise UserError(f"--pred {pred_dir}: {what}. To evaluate only the images present, pass --subset.")

    rows = []
    for (event, name), p in zip(keys, present):
        if not p:
            continue
        path = pred_dir / event / f"{name}.txt"
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            line1, values = parse_prediction(data)
        except ValueError as exc:
            raise UserError(f"{path}:{str(exc).removeprefix('line ')}") from exc
        except OSError as exc:
            raise UserError(f"{path}: cannot read ({exc.strerror})") from exc
        if line1 is not None:
            _check_name(line1, path)
        rows.append(values)
    counts = np.array([len(r) for r in rows], dtype=np.intp)
    offsets = np.zeros(len(rows) + 1, dtype=np.intp)
    np.cumsum(counts, out=offsets[1:])
    table = np.concatenate(rows) if rows else np.zeros((0, 5))
    log.debug("read %d prediction files, %d detections", len(rows), len(table))
    return Predictions(
        present=present,
        boxes=np.ascontiguousarray(table[:, :4]),
        scores=np.ascontiguousarray(table[:, 4]),
        offsets=offsets,
    )
