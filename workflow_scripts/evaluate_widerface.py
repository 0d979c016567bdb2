"""Rule evaluate_widerface: a WIDER prediction tree -> AP table and PR curve points."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share, before MindSpore is imported

from pathlib import Path

from centerface_flow.evaluation import evaluate_tree, write_ap_table, write_pr_curves
from centerface_flow.workflow import script_logging

log = script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
settings = snakemake.params.evaluate  # noqa: F821
gt_dir = Path(snakemake.input.gt[0]).parent  # noqa: F821
result = evaluate_tree(snakemake.input.pred, gt_dir, settings["iou"], settings["protocol"],  # noqa: F821
                       subset=snakemake.params.subset)  # noqa: F821
write_ap_table(result, snakemake.output.ap)  # noqa: F821
write_pr_curves(result, snakemake.output.pr)  # noqa: F821
