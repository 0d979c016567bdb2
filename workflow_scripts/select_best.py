"""Checkpoint select_best: pick the model to export from the AP summary (results/best.txt)."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share, before MindSpore is imported

from centerface_flow.workflow import pick_best, script_logging, write_best

log = script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
best = snakemake.params.best  # noqa: F821
model, row = pick_best(snakemake.input[0], best["metric"], best["exclude_released"])  # noqa: F821
write_best(snakemake.output[0], model, row, best["metric"], best["exclude_released"])  # noqa: F821
log.info("best model by %s AP: %s", best["metric"], model)
