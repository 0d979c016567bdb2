"""Rule postprocess_predictions: candidates -> score threshold + NMS -> WIDER prediction tree (+ landmarks.tsv)."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share, before MindSpore is imported

from centerface_flow.inference.candidates import load_candidates
from centerface_flow.postprocess.predictions import write_tree
from centerface_flow.settings import from_section
from centerface_flow.workflow import script_logging

script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
write_tree(load_candidates(snakemake.input[0]), snakemake.output[0],  # noqa: F821
           from_section("postprocess", snakemake.params.postprocess))  # noqa: F821
