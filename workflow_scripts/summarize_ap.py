"""Rule summarize_ap: every AP table -> results/summary/ap_by_epoch.{csv,md,html,png} and pr_curves.png."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share, before MindSpore is imported

from pathlib import Path

from centerface_flow.evaluation.summary import ValSet, summarize
from centerface_flow.settings import from_section
from centerface_flow.workflow import script_logging

script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
params = snakemake.params  # noqa: F821
evaluate = from_section("evaluate", params.evaluate)
val_set = ValSet(demo=params.demo, subset=params.subset, iou=evaluate.iou, protocol=evaluate.protocol)
# the PR curve tables (input.pr) are found next to the AP tables as <model>_pr.tsv
summarize([Path(p) for p in snakemake.input.ap], Path(snakemake.output.csv).parent, val_set=val_set)  # noqa: F821
