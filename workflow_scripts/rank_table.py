"""Rule rank_table: the HCCL rank table for train.devices Ascend devices (`centerface rank-table`)."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share, before MindSpore is imported

from centerface_flow.training.distributed import write_host_rank_table
from centerface_flow.workflow import script_logging

script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
write_host_rank_table(snakemake.output[0], int(snakemake.wildcards.n), snakemake.params.device_ids)  # noqa: F821
