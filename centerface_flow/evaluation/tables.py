"""AP tables and PR-curve tables (TSV with a header row; floats at full precision via ``repr``).

AP table columns: ``setting ap faces images iou protocol subset image_set`` (one row per setting: easy, medium,
hard; ``faces`` and ``images`` are what the model was scored on, ``image_set`` a fingerprint of the images).
PR table columns: ``setting recall precision threshold`` (1000 rows per setting, by descending threshold;
precision is ``nan`` at thresholds no detection reaches).
"""
from __future__ import annotations

from pathlib import Path

from centerface_flow.errors import UserError
from centerface_flow.evaluation.core import EvalResult
from centerface_flow.io import atomic_write_text

__all__ = ["AP_COLUMNS", "PR_COLUMNS", "read_ap_table", "read_pr_curves", "write_ap_table", "write_pr_curves"]

AP_COLUMNS = ("setting", "ap", "faces", "images", "iou", "protocol", "subset", "image_set")
PR_COLUMNS = ("setting", "recall", "precision", "threshold")


def write_ap_table(result: EvalResult, path_tsv: str | Path) -> None:
    """Write the per-setting AP table of ``result`` to ``path_tsv`` (atomic)."""
    lines = ["\t".join(AP_COLUMNS)]
    for s in result.settings.values():
        lines.append("\t".join([s.setting, repr(float(s.ap)), str(s.faces), str(s.images), repr(float(result.iou)),
                                result.protocol, str(result.subset).lower(), result.image_set or "-"]))
    atomic_write_text(path_tsv, "\n".join(lines) + "\n")


def write_pr_curves(result: EvalResult, path_tsv: str | Path) -> None:
    """Write the PR points of every setting of ``result`` to ``path_tsv`` (atomic)."""
    lines = ["\t".join(PR_COLUMNS)]
    for s in result.settings.values():
        for r, p, t in zip(s.recall.tolist(), s.precision.tolist(), s.thresholds.tolist()):
            lines.append(f"{s.setting}\t{r!r}\t{p!r}\t{t!r}")
    atomic_write_text(path_tsv, "\n".join(lines) + "\n")


def _read(path: str | Path, columns: tuple[str, ...]):
    import pandas as pd

    path = Path(path)
    try:
        frame = pd.read_csv(path, sep="\t", dtype={"image_set": str})  # hex digits only would read as a number
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{path}: cannot read the table ({exc})") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(map(str, frame.columns))})")
    return frame


def read_ap_table(path: str | Path):
    """Read an AP table written by :func:`write_ap_table` (pandas DataFrame; only setting and ap required)."""
    return _read(path, ("setting", "ap"))


def read_pr_curves(path: str | Path):
    """Read a PR table written by :func:`write_pr_curves` (pandas DataFrame)."""
    return _read(path, ("setting", "recall", "precision"))
