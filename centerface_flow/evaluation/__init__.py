"""WIDER FACE evaluation: ground truth, prediction trees, the ``python`` and ``official`` protocols, AP tables,
PR curves and the summary across models.

Typical use::

    result = evaluate_tree("results/predictions/epoch_140", "data/widerface/ground_truth", iou=0.5)
    write_ap_table(result, "ap.tsv")
    write_pr_curves(result, "ap_pr.tsv")
"""
from __future__ import annotations

from pathlib import Path

from centerface_flow.evaluation.core import PROTOCOLS, EvalResult, SettingResult, evaluate_arrays, voc_ap
from centerface_flow.evaluation.groundtruth import SETTINGS, GroundTruth, load_ground_truth
from centerface_flow.evaluation.predictions import Predictions, read_prediction_tree
from centerface_flow.evaluation.summary import summarize
from centerface_flow.evaluation.tables import read_ap_table, read_pr_curves, write_ap_table, write_pr_curves

__all__ = [
    "PROTOCOLS",
    "SETTINGS",
    "EvalResult",
    "GroundTruth",
    "Predictions",
    "SettingResult",
    "evaluate_arrays",
    "evaluate_to_files",
    "evaluate_tree",
    "load_ground_truth",
    "read_ap_table",
    "read_pr_curves",
    "read_prediction_tree",
    "summarize",
    "voc_ap",
    "write_ap_table",
    "write_pr_curves",
]


def evaluate_tree(pred_dir: str | Path, gt_dir: str | Path, iou: float = 0.5, protocol: str = "python",
                  subset: bool = False) -> EvalResult:
    """Evaluate the prediction tree ``pred_dir/<event>/<image>.txt`` against the official ground truth.

    gt_dir: the folder holding ``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat``.
    iou: match threshold in (0, 1] (0.5 official; the MindSpore model zoo used 0.4).
    protocol: ``python`` (the widely used Python port) or ``official`` (MATLAB eval_tools semantics).
    subset: evaluate only the images that have a prediction file (otherwise every val image needs one).
    Raises ``UserError`` for bad input.
    """
    from centerface_flow.errors import UserError

    if protocol not in PROTOCOLS:
        raise UserError(f"protocol: must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if not 0 < iou <= 1:
        raise UserError(f"iou: must be in (0, 1], got {iou!r}")
    gt = load_ground_truth(gt_dir)
    preds = read_prediction_tree(pred_dir, gt, subset=subset)
    return evaluate_arrays(gt, preds, iou=iou, protocol=protocol, subset=subset)


def evaluate_to_files(pred_dir: str | Path, gt_dir: str | Path, ap_out: str | Path, pr_out: str | Path,
                      iou: float = 0.5, protocol: str = "python", subset: bool = False) -> EvalResult:
    """:func:`evaluate_tree`, then its AP table to ``ap_out`` and its PR-curve points to ``pr_out`` (the
    ``evaluate_widerface`` rule)."""
    result = evaluate_tree(pred_dir, gt_dir, iou=iou, protocol=protocol, subset=subset)
    write_ap_table(result, ap_out)
    write_pr_curves(result, pr_out)
    return result
