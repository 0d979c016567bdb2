"""Rule write_model_card: best.txt, the AP summary, the ONNX export and the export checks -> results/best.md."""
from centerface_flow.export.card import write_model_card
from centerface_flow.workflow import script_logging

log = script_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
inputs = snakemake.input  # noqa: F821
write_model_card(snakemake.output[0], inputs.best, inputs.ap, inputs.checks, inputs.onnx, inputs.ckpt,  # noqa: F821
                 inputs.best_ckpt)
log.info("model card -> %s", snakemake.output[0])  # noqa: F821
