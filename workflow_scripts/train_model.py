"""Rule train_model: every epoch's checkpoint in results/train/, resumable state in params.state_dir/<state key>
(the key leaves out what cannot change the epochs already trained, see
centerface_flow.training.train.state_identity)."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share, before MindSpore is imported

from pathlib import Path

from centerface_flow.training.train import run_workflow_job
from centerface_flow.workflow import script_logging

script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
inp, out = snakemake.input, snakemake.output  # noqa: F821
run_workflow_job({**snakemake.params.train, "init_path": str(inp.init or "")}, inp.annotations,  # noqa: F821
                 inp.images, Path(out.done).parent, snakemake.params.state_dir, out.done,  # noqa: F821
                 rank_table=inp.rank_table or None)
