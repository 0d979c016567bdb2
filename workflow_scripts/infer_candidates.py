"""Rule infer_candidates: one checkpoint x the val images -> results/candidates/{model}.npz (`centerface infer`)."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share, before MindSpore is imported

from centerface_flow.inference.detect import infer_folder
from centerface_flow.settings import from_section
from centerface_flow.workflow import script_logging

script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
cfg = from_section("infer", snakemake.params.infer)  # noqa: F821
cands = infer_folder(snakemake.input.weights, snakemake.input.images, snakemake.output[0], cfg)  # noqa: F821
if cands.failed:
    raise SystemExit(f"{len(cands.failed)} images could not be read: {', '.join(cands.failed[:5])}")
