"""Checkpoint select_best: pick the model to export from the AP summary (results/best.txt)."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share, before MindSpore is imported

from centerface_flow.settings import from_section
from centerface_flow.workflow import script_logging, select_best

script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
best = from_section("best", snakemake.params.best)  # noqa: F821
select_best(snakemake.input[0], snakemake.output[0], best.metric, best.exclude_released)  # noqa: F821
