"""Training curves: ``metrics.csv`` (one row per optimizer step, see ``training.train``) -> one PNG.

Left: the training loss and its four unweighted terms, faint per step and as each epoch's mean (log scale: the
terms differ by orders of magnitude); right: the learning rate per step. The x axis is the epoch, so the steps of
epoch ``E`` lie in ``(E - 1, E]`` and its mean sits at ``E``, where the AP-by-epoch plot shows checkpoint ``E``.
Steps whose update was skipped (non-finite gradients) are left out of the loss curves.
"""
from __future__ import annotations

import logging
from pathlib import Path

from centerface_flow.errors import UserError
from centerface_flow.io import atomic_write

__all__ = ["LOSS_TERMS", "epoch_means", "plot_training_curves", "read_metrics"]

log = logging.getLogger(__name__)

#: metrics.csv column -> legend label (the weighted sum first, then the terms in CenterFaceLoss order).
LOSS_TERMS = {"loss": "loss (weighted sum)", "hm_loss": "heat map (focal)", "wh_loss": "box size (smooth L1)",
              "off_loss": "centre offset (smooth L1)", "lm_loss": "landmarks (L1)"}
_NEEDED = ("epoch", "step", *LOSS_TERMS, "lr")


def read_metrics(path: str | Path, epochs: int | None = None):
    """The rows of ``metrics.csv`` (pandas DataFrame) up to epoch ``epochs`` (all when None), with ``x``: the
    step's position in epochs. Raises ``UserError`` for a missing file or column, or no rows."""
    import pandas as pd

    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{path}: cannot read the training metrics ({exc})") from exc
    missing = [c for c in _NEEDED if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(map(str, frame.columns))})")
    if epochs is not None:
        frame = frame[frame["epoch"] <= epochs]  # a state folder trained further before train.epochs was lowered
    if frame.empty:
        raise UserError(f"{path}: no training step recorded" + (f" up to epoch {epochs}" if epochs is not None else ""))
    frame = frame.sort_values("step").reset_index(drop=True)
    position = frame.groupby("epoch").cumcount() + 1
    frame["x"] = frame["epoch"] - 1 + position / frame.groupby("epoch")["step"].transform("size")
    return frame


def epoch_means(frame):
    """Per epoch: the mean of each loss column over the steps that updated the model, and the last lr."""
    import numpy as np

    kept = frame
    if "skipped" in frame.columns:
        kept = frame[frame["skipped"].fillna(0).astype(int) == 0]
    kept = kept[np.isfinite(kept[list(LOSS_TERMS)]).all(axis=1)]
    means = kept.groupby("epoch")[list(LOSS_TERMS)].mean()
    means["lr"] = frame.groupby("epoch")["lr"].last()
    return means.reset_index()


def plot_training_curves(metrics_csv: str | Path, out_png: str | Path, demo: bool = False,
                         epochs: int | None = None) -> Path:
    """Plot ``metrics_csv`` (a training run's per-step metrics) to ``out_png``; return ``out_png``.

    demo: the run trained on the embedded demo (named in the title; WIDER FACE train otherwise).
    epochs: plot epochs 1..epochs only (default every epoch in the file).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    frame = read_metrics(metrics_csv, epochs)
    means = epoch_means(frame)
    steps = frame.groupby("epoch").size()
    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    updated = frame[frame["skipped"].fillna(0).astype(int) == 0] if "skipped" in frame.columns else frame
    for i, (column, label) in enumerate(LOSS_TERMS.items()):
        color = f"C{i}"
        ax_loss.plot(updated["x"], updated[column], color=color, alpha=0.25, linewidth=0.8)
        ax_loss.plot(means["epoch"], means[column], color=color, marker="o", linewidth=1.8 if i else 2.4,
                     label=label)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("loss (epoch mean; faint: per step)")
    # a step's lr holds from its start to its end, (x - 1/n, x]: drawn from each start, closed at the last end
    start = frame["x"] - 1 / frame.groupby("epoch")["step"].transform("size")
    ax_lr.plot([*start, frame["x"].iloc[-1]], [*frame["lr"], frame["lr"].iloc[-1]], color="tab:purple",
               drawstyle="steps-post")
    positive = frame["lr"][frame["lr"] > 0]
    if len(positive) and positive.max() / positive.min() >= 10:  # milestones or warm-up span decades
        ax_lr.set_yscale("log")
    ax_lr.set_ylabel("learning rate (per step)")
    last = int(frame["epoch"].max())
    for ax in (ax_loss, ax_lr):
        ax.set_xlabel("epoch")
        ax.set_xlim(0, last + 0.05)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    ax_loss.legend(fontsize=8)
    per_epoch = f"{steps.iloc[0]} steps per epoch" if steps.nunique() == 1 else "steps per epoch vary"
    data = "demo train" if demo else "WIDER FACE train"
    fig.suptitle(f"Training on {data}: loss terms and learning rate, {last} epoch{'s' * (last != 1)} "
                 f"({per_epoch})")
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_write(out_png, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)
    log.info("training curves of %d epochs (%d steps) written to %s", last, len(frame), out_png)
    return out_png
