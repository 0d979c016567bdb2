"""Rule rank_table: the HCCL rank table for train.devices Ascend devices (`centerface rank-table`)."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share, before MindSpore is imported

from centerface_flow.training import distributed
from centerface_flow.workflow import script_logging

script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
n = int(snakemake.wildcards.n)  # noqa: F821
ids = snakemake.params.device_ids or list(range(n))  # noqa: F821
table = distributed.rank_table(ids, distributed.read_hccn_conf())
distributed.write_rank_table(snakemake.output[0], table)  # noqa: F821
