"""Rule convert_backbone: torchvision mobilenet_v2 .pth (or the released model's backbone) -> MindSpore ckpt."""
from centerface_flow import runtime

runtime.use_threads(snakemake.threads)  # noqa: F821 - this job's CPU share, before MindSpore is imported

from centerface_flow.convert.backbone import convert_backbone
from centerface_flow.workflow import script_logging

script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
runtime.mindspore()
inp = snakemake.input  # noqa: F821
convert_backbone(snakemake.output[0], pth=inp.pth or None, from_ckpt=inp.released or None)  # noqa: F821
