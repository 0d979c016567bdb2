"""Rule summarize_ap: every AP table -> results/summary/ap_by_epoch.{csv,md,png} and pr_curves.png."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share, before MindSpore is imported

from pathlib import Path

from centerface_flow.evaluation import summarize
from centerface_flow.workflow import script_logging

script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
# the PR curve tables (input.pr) are found next to the AP tables as <model>_pr.tsv
summarize([Path(p) for p in snakemake.input.ap], Path(snakemake.output.csv).parent)  # noqa: F821
