"""Rule convert_released: the authors' centerface.onnx -> results/released/centerface.ckpt."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share, before MindSpore is imported

from centerface_flow.convert.released import convert_released
from centerface_flow.workflow import script_logging

script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
runtime.mindspore()
convert_released(snakemake.params.onnx or None, snakemake.output[0])  # noqa: F821
