# centerface-flow: backbone -> training -> per-checkpoint inference -> NMS -> WIDER FACE AP -> summary -> export.
# Paths under results/ are the user interface (see README, "Artefacts"). Run e.g.
#     snakemake --cores 8 --profile profiles/default results/best.onnx
from snakemake.utils import min_version

min_version("8.10")


configfile: "config.yaml"


# the front page of `snakemake --report results/report.html`
report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/weights.smk"
include: "rules/train.smk"
include: "rules/test.smk"
include: "rules/evaluate.smk"
include: "rules/export.smk"


rule all:
    input:
        "results/summary/ap_by_epoch.csv",
        "results/summary/training_curves.png",
        "results/train/metrics.csv",
        "results/best.txt",
        "results/best.ckpt",
        "results/best.mindir",
        "results/best.onnx",
        "results/best.md",
