"""Rule evaluate_widerface: a WIDER prediction tree -> AP table and PR curve points."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share, before MindSpore is imported

from pathlib import Path

from centerface_flow.evaluation import evaluate_to_files
from centerface_flow.settings import from_section
from centerface_flow.workflow import script_logging

script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
settings = from_section("evaluate", snakemake.params.evaluate)  # noqa: F821
inp, out = snakemake.input, snakemake.output  # noqa: F821
evaluate_to_files(inp.pred, Path(inp.gt[0]).parent, out.ap, out.pr, settings.iou, settings.protocol,
                  subset=snakemake.params.subset)  # noqa: F821
