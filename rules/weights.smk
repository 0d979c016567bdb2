# Starting weights: the authors' released model and the ImageNet backbone, converted to MindSpore checkpoints;
# the HCCL rank table for multi-device training on Ascend.


rule convert_released:
    output:
        "results/released/centerface.ckpt",
    log:
        "results/logs/convert_released.log",
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        onnx=RELEASED_ONNX,
    script:
        "../workflow_scripts/convert_released.py"


rule convert_backbone:
    input:
        pth=config["weights"]["backbone_pth"] or [],
        released=(
            []
            if config["weights"]["backbone_pth"]
            else "results/released/centerface.ckpt"
        ),
    output:
        "results/backbone/mobilenet_v2.ckpt",
    log:
        "results/logs/convert_backbone.log",
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow_scripts/convert_backbone.py"


rule rank_table:
    output:
        "results/rank_table/hccl_{n}p.json",
    log:
        "results/logs/rank_table_{n}p.log",
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        device_ids=config["train"]["device_ids"],
    script:
        "../workflow_scripts/rank_table.py"
