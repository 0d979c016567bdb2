"""Summary across models: ``ap_by_epoch.csv``, ``.md``, ``.html`` and the plots ``ap_by_epoch.png`` and
``pr_curves.png``.

A model is named by its AP table's file stem (``epoch_140.tsv`` -> ``epoch_140``); ``epoch_{E}`` names give the
epoch, other models (``released``, ...) have an empty epoch and appear in the AP plot as dashed horizontal lines.
PR curves come from ``<stem>_pr.tsv`` next to each AP table unless given explicitly.

The plot titles and the line above the Markdown table say what the APs were measured on (:class:`ValSet`): the
val set with its image count, and the IoU and protocol, e.g. ``demo val (12 images)``, ``IoU 0.5, python
protocol``. An AP read without those is easily compared with a number from another protocol or data set.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from centerface_flow.errors import UserError
from centerface_flow.evaluation.groundtruth import SETTINGS
from centerface_flow.evaluation.tables import read_ap_table, read_pr_curves
from centerface_flow.io import atomic_write, atomic_write_text

__all__ = ["ValSet", "ap_frame", "default_pr_models", "describe", "model_name", "summarize"]

log = logging.getLogger(__name__)

_EPOCH = re.compile(r"^epoch_(\d+)$")
_COLORS = {"easy": "tab:green", "medium": "tab:orange", "hard": "tab:red"}
#: medium and hard AP are often within a hair of each other: distinct markers keep both lines visible
_MARKERS = {"easy": "o", "medium": "s", "hard": "^"}


@dataclass(frozen=True)
class ValSet:
    """What the APs were measured on, as configured (the workflow passes ``config.yaml``'s values).

    demo: the embedded demo's val set (``dataset:`` keys empty), else WIDER FACE val.
    subset: ``dataset.val_subset`` (only the val images present were scored).
    iou, protocol: the ``evaluate:`` section.
    ``None`` takes what the AP tables record. A configured value that the tables contradict is an error: the
    plots would label the numbers with settings they were not measured with.
    """

    demo: bool = False
    subset: bool | None = None
    iou: float | None = None
    protocol: str | None = None


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
        for column in ("images", "faces", "iou", "protocol", "subset"):
            if column in table.columns:
                # faces of the hard setting: every face the model was scored on (hard counts easy and medium's too)
                values = table.loc[table["setting"].astype(str) == "hard", column] if column == "faces" else table[column]
                row[column] = _as_bool(values.iloc[0]) if column == "subset" else values.iloc[0]
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


def _as_bool(value) -> bool:
    """An AP table's ``subset`` cell: pandas reads ``true``/``false`` as booleans, a lone table may give text."""
    return value if isinstance(value, bool) else str(value).strip().lower() == "true"


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


def _recorded(frame, column: str, label: str):
    """The one value of ``column`` over all models (None if the tables do not record it)."""
    if column not in frame.columns:
        return None
    values = frame[column].dropna().unique().tolist()
    if len(values) > 1:
        models = ", ".join(f"{m}: {v}" for m, v in zip(frame["model"], frame[column]))
        raise UserError(f"the AP tables were scored with different {label} and cannot be compared ({models})")
    return values[0] if values else None


def describe(frame, val_set: ValSet | None = None) -> tuple[str, str]:
    """(data set, protocol) of an :func:`ap_frame`, for titles: ``("demo val (12 images)", "IoU 0.5, python
    protocol")``. Raises ``UserError`` when ``val_set`` contradicts what the tables record."""
    val_set = val_set or ValSet()
    recorded = {"iou": _recorded(frame, "iou", "IoU"), "protocol": _recorded(frame, "protocol", "protocols"),
                "subset": _recorded(frame, "subset", "val_subset settings")}
    chosen = {}
    for key, value in recorded.items():
        configured = getattr(val_set, key)
        if key == "iou" and configured is not None and value is not None:
            same = abs(float(configured) - float(value)) < 1e-9
        else:
            same = configured is None or value is None or configured == value
        if not same:
            raise UserError(f"the AP tables were scored with {key} {value!r}, the configuration says {configured!r}: "
                            "evaluate the models again with the configured settings")
        chosen[key] = configured if configured is not None else value
    if val_set.demo:
        name = "demo val"
    else:
        name = "WIDER FACE val subset" if chosen["subset"] else "WIDER FACE val"
    images = _recorded(frame, "images", "image counts")
    if images is not None:
        name += f" ({int(images):,} images)"
    parts = []
    if chosen["iou"] is not None:
        parts.append(f"IoU {float(chosen['iou']):g}")
    if chosen["protocol"] is not None:
        parts.append(f"{chosen['protocol']} protocol")
    return name, ", ".join(parts) or "protocol not recorded"


def _plot_ap(frame, path: Path, data: str, protocol: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    epochs = frame[frame["epoch"].notna()]
    others = frame[frame["epoch"].isna()]
    for s in SETTINGS:
        if len(epochs):
            ax.plot(epochs["epoch"].astype(int), epochs[s], marker=_MARKERS[s], markerfacecolor="none", color=_COLORS[s],
                    label=s)
        for dash, (_, row) in zip(("--", ":", "-."), others.iterrows()):
            ax.axhline(row[s], color=_COLORS[s], linestyle=dash, linewidth=1, label=f"{s} ({row['model']})")
    ax.set_xlabel("epoch")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_ylabel("AP")
    ax.set_title(f"AP by epoch on {data}\n{protocol}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)


def _plot_pr(curves: dict, frame, path: Path, data: str, protocol: str) -> None:
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
    fig.suptitle(f"Precision-recall on {data}, {protocol} (AP in the legend)")
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)


_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>AP by epoch</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
</style>
</head>
<body>
<h2>AP by epoch on {data}</h2>
<p>{protocol}. Easy, medium and hard AP of every model; <code>images</code> and <code>faces</code> are what each
model was scored on.</p>
{table}
</body>
</html>
"""


def _write_html(frame, path: Path, data: str, protocol: str) -> None:
    """The table as a small self-contained page: Snakemake's report shows HTML, but offers CSV only as a download."""
    import html

    ap = "{:.4f}".format
    formatters = {s: ap for s in SETTINGS}
    if "iou" in frame.columns:
        formatters["iou"] = "{:g}".format
    shown = frame.astype({"epoch": "object"}).fillna({"epoch": ""})
    table = shown.to_html(index=False, formatters=formatters, border=0, na_rep="")
    atomic_write_text(path, _HTML.format(data=html.escape(data), protocol=html.escape(protocol), table=table))


def summarize(ap_tables: dict[str, Path] | list[Path], out_dir: str | Path, pr_models: list[str] | None = None,
              pr_tables: dict[str, Path] | None = None, val_set: ValSet | None = None) -> dict[str, Path]:
    """Write ``ap_by_epoch.csv``, ``.md``, ``.html``, ``.png`` and ``pr_curves.png`` to ``out_dir``.

    ap_tables: model -> AP table, or a list of AP tables (model = file stem).
    pr_models: models whose PR curves are drawn (default :func:`default_pr_models`).
    pr_tables: model -> PR table (default ``<stem>_pr.tsv`` next to the model's AP table).
    val_set: what the APs were measured on, for the titles (default: WIDER FACE val, the rest from the tables).
    Returns output name -> path.
    """
    out_dir = Path(out_dir)
    mapping = _as_mapping(ap_tables)
    frame = ap_frame(mapping)
    data, protocol = describe(frame, val_set)
    outputs = {name: out_dir / f"ap_by_epoch.{name}" for name in ("csv", "md", "html", "png")}
    outputs["pr"] = out_dir / "pr_curves.png"
    with atomic_write(outputs["csv"], "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False)  # floats as the shortest repr that round-trips
    shown = frame.astype({"epoch": "object"}).fillna({"epoch": ""})
    table = shown.to_markdown(index=False, floatfmt=".4f")
    atomic_write_text(outputs["md"], f"AP on {data}, {protocol}.\n\n{table}\n")
    _write_html(frame, outputs["html"], data, protocol)
    _plot_ap(frame, outputs["png"], data, protocol)

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
    _plot_pr(curves, frame, outputs["pr"], data, protocol)
    log.info("summary of %d models written to %s", len(frame), out_dir)
    return outputs
