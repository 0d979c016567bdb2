"""Rules export_model / export_air: results/best.ckpt -> results/best.{mindir,onnx,air} + a verification report."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share, before MindSpore is imported

from centerface_flow.export import export_checkpoint, first_image
from centerface_flow.workflow import script_logging

script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
fmt = snakemake.output.model.rsplit(".", 1)[1]  # noqa: F821
settings, inputs, outputs = snakemake.params.export, snakemake.input, snakemake.output  # noqa: F821
export_checkpoint(inputs.ckpt, outputs.model, fmt, first_image(inputs.images), settings["width"], settings["height"],
                  outputs.check, dynamic=settings["dynamic"])
