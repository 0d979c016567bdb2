"""Summary across models: ``ap_by_epoch.csv`` + ``.md`` and the plots ``ap_by_epoch.png`` and ``pr_curves.png``.

A model is named by its AP table's file stem (``epoch_140.tsv`` -> ``epoch_140``); ``epoch_{E}`` names give the
epoch, other models (``released``, ...) have an empty epoch and appear in the AP plot as dashed horizontal lines.
PR curves come from ``<stem>_pr.tsv`` next to each AP table unless given explicitly.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from centerface_flow.errors import UserError
from centerface_flow.evaluation.groundtruth import SETTINGS
from centerface_flow.evaluation.tables import read_ap_table, read_pr_curves
from centerface_flow.io import atomic_write, atomic_write_text

__all__ = ["ap_frame", "default_pr_models", "model_name", "summarize"]

log = logging.getLogger(__name__)

_EPOCH = re.compile(r"^epoch_(\d+)$")
_COLORS = {"easy": "tab:green", "medium": "tab:orange", "hard": "tab:red"}


def model_name(path: str | Path) -> str:
    """Model name of an AP table: its file stem."""
    return Path(path).stem


def _as_mapping(ap_tables) -> dict[str, Path]:
    if isinstance(ap_tables, dict):
        return {str(k): Path(v) for k, v in ap_tables.items()}
    mapping = {}
    for path in ap_tables:
        name = model_name(path)
        if name.endswith("_pr"):  # a PR table caught by a glob such as results/ap/*.tsv
            log.info("skipping %s: a PR-curve table, not an AP table", path)
            continue
        if name in mapping:
            raise UserError(f"two AP tables give the model name {name!r}: {mapping[name]} and {path}")
        mapping[name] = Path(path)
    return mapping


def ap_frame(ap_tables: dict[str, Path] | list[Path]):
    """DataFrame with one row per model: ``model, epoch, easy, medium, hard`` (+ ``iou, protocol`` when the tables
    have them), epoch models first by epoch, then the others by name. ``epoch`` is a nullable integer."""
    import pandas as pd

    rows = []
    for name, path in _as_mapping(ap_tables).items():
        table = read_ap_table(path)
        ap = dict(zip(table["setting"].astype(str), table["ap"].astype(float)))
        missing = [s for s in SETTINGS if s not in ap]
        if missing:
            raise UserError(f"{path}: no row for setting(s) {', '.join(missing)}")
        match = _EPOCH.match(name)
        row = {"model": name, "epoch": int(match.group(1)) if match else None, **{s: ap[s] for s in SETTINGS}}
        for column in ("images", "faces", "iou", "protocol"):
            if column in table.columns:
                # faces of the hard setting: every face the model was scored on (hard counts easy and medium's too)
                values = table.loc[table["setting"].astype(str) == "hard", column] if column == "faces" else table[column]
                row[column] = values.iloc[0]
        row["_image_set"] = str(table["image_set"].iloc[0]) if "image_set" in table.columns else ""
        row["_path"] = str(path)
        rows.append(row)
    if not rows:
        raise UserError("no AP tables to summarize")
    _check_same_images(rows)
    frame = pd.DataFrame(rows).drop(columns=["_image_set", "_path"])
    frame["epoch"] = frame["epoch"].astype("Int64")
    frame["_order"] = frame["epoch"].isna()
    frame = frame.sort_values(["_order", "epoch", "model"]).drop(columns="_order").reset_index(drop=True)
    return frame


def _check_same_images(rows: list[dict]) -> None:
    """APs are comparable only over the same images: refuse models scored on different image sets."""
    def key(row):
        digest = row["_image_set"] if row["_image_set"] not in ("", "-", "nan") else None
        return row.get("images"), row.get("faces"), digest

    first = rows[0]
    for row in rows[1:]:
        (n0, f0, d0), (n1, f1, d1) = key(first), key(row)
        differ = (n0 is not None and n1 is not None and (n0 != n1 or f0 != f1)) or (d0 and d1 and d0 != d1)
        if differ:
            raise UserError(f"models scored on different image sets cannot be compared: {first['model']} on "
                            f"{n0} images / {f0} faces ({first['_path']}), {row['model']} on {n1} images / {f1} "
                            f"faces ({row['_path']}){'' if n0 != n1 else ', same counts but other images'}. "
                            "Evaluate every model on the same prediction set (a prediction tree may have lost "
                            "files: write it again)")


def default_pr_models(frame) -> list[str]:
    """The best model other than ``released`` by hard AP, plus ``released`` if present."""
    others = frame[frame["model"] != "released"]
    models = [str(others.loc[others["hard"].idxmax(), "model"])] if len(others) else []
    if "released" in set(frame["model"]):
        models.append("released")
    return models


def _plot_ap(frame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    epochs = frame[frame["epoch"].notna()]
    others = frame[frame["epoch"].isna()]
    for s in SETTINGS:
        if len(epochs):
            ax.plot(epochs["epoch"].astype(int), epochs[s], marker="o", color=_COLORS[s], label=s)
        for dash, (_, row) in zip(("--", ":", "-."), others.iterrows()):
            ax.axhline(row[s], color=_COLORS[s], linestyle=dash, linewidth=1, label=f"{s} ({row['model']})")
    ax.set_xlabel("epoch")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_ylabel("AP")
    ax.set_title("WIDER FACE val AP by epoch")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)


def _plot_pr(curves: dict, frame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SETTINGS), figsize=(13, 4.3), sharey=True)
    ap = frame.set_index("model")
    for ax, s in zip(axes, SETTINGS):
        for name, table in curves.items():
            part = table[table["setting"] == s]
            ax.plot(part["recall"], part["precision"], label=f"{name} ({ap.loc[name, s]:.3f})")
        ax.set_title(s)
        ax.set_xlabel("recall")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    axes[0].set_ylabel("precision")
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)


def summarize(ap_tables: dict[str, Path] | list[Path], out_dir: str | Path, pr_models: list[str] | None = None,
              pr_tables: dict[str, Path] | None = None) -> dict[str, Path]:
    """Write ``ap_by_epoch.csv``, ``ap_by_epoch.md``, ``ap_by_epoch.png`` and ``pr_curves.png`` to ``out_dir``.

    ap_tables: model -> AP table, or a list of AP tables (model = file stem).
    pr_models: models whose PR curves are drawn (default :func:`default_pr_models`).
    pr_tables: model -> PR table (default ``<stem>_pr.tsv`` next to the model's AP table).
    Returns output name -> path.
    """
    out_dir = Path(out_dir)
    mapping = _as_mapping(ap_tables)
    frame = ap_frame(mapping)
    outputs = {name: out_dir / f"ap_by_epoch.{name}" for name in ("csv", "md", "png")}
    outputs["pr"] = out_dir / "pr_curves.png"
    with atomic_write(outputs["csv"], "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False)  # floats as the shortest repr that round-trips
    shown = frame.astype({"epoch": "object"}).fillna({"epoch": ""})
    atomic_write_text(outputs["md"], shown.to_markdown(index=False, floatfmt=".4f") + "\n")
    _plot_ap(frame, outputs["png"])

    pr_models = list(pr_models) if pr_models else default_pr_models(frame)
    unknown = [m for m in pr_models if m not in mapping]
    if unknown:
        raise UserError(f"--pr-models: unknown model(s) {', '.join(unknown)}; known: {', '.join(mapping)}")
    pr_tables = dict(pr_tables or {})
    curves = {}
    for name in pr_models:
        path = Path(pr_tables.get(name, mapping[name].with_name(f"{mapping[name].stem}_pr.tsv")))
        if not path.is_file():
            raise UserError(f"PR curves of model {name!r}: {path} does not exist (write it with "
                            f"`centerface evaluate --pr-out`)")
        curves[name] = read_pr_curves(path)
    _plot_pr(curves, frame, outputs["pr"])
    log.info("summary of %d models written to %s", len(frame), out_dir)
    return outputs
