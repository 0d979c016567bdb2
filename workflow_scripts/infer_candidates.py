"""Rule infer_candidates: one checkpoint x the val images -> results/candidates/{model}.npz (`centerface infer`)."""
import sys

from centerface_flow import runtime

runtime.apply_fast_path_env()  # before anything imports MindSpore

from centerface_flow.cli import main
from centerface_flow.workflow import script_logging

script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
infer = snakemake.params.infer  # noqa: F821
argv = ["infer", "--weights", snakemake.input.weights, "--images", snakemake.input.images,  # noqa: F821
        "--out", snakemake.output[0], "--size", infer["size"], "--top-k", str(infer["top_k"]),  # noqa: F821
        "--scales", *map(str, infer["scales"]), "--no-progress"] + (["--flip"] if infer["flip"] else [])
sys.exit(main(argv))
