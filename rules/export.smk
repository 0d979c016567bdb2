# Export of the best model. results/best.txt comes from a checkpoint rule: the inputs of copy_best and of the
# exports (the chosen epoch's checkpoint itself, not results/best.ckpt, so that Snakemake re-evaluates them
# after the checkpoint ran) are decided only once it exists, and they rerun only when the choice changes.


rule copy_best:
    input:
        best_weights,
    output:
        "results/best.ckpt",
    log:
        "results/logs/copy_best.log",
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        model=best_model_name,
    shell:
        # staged next to the output and renamed, so best.ckpt is never half-written
        "(cp {input:q} {output:q}.part && chmod u+w {output:q}.part && mv {output:q}.part {output:q}) 2> {log:q}"


rule export_model:
    input:
        ckpt=best_weights,
        images=DATA["val_images"],
    output:
        model="results/best.{fmt}",
        check=report(
            "results/best.{fmt}.check.json",
            caption="../report/export_check.rst",
            category="Best model",
            subcategory="Export checks",
        ),
    log:
        "results/logs/export_model_{fmt}.log",
    wildcard_constraints:
        fmt="mindir|onnx",
    resources:
        gres=NPU_GRES,
        mem_mb=2000,
        runtime=20,
    params:
        export=config["export"],
    script:
        "../workflow_scripts/export_model.py"


rule export_air:
    input:
        unpack(air_input),
    output:
        model="results/best.air",
        check="results/best.air.check.json",
    log:
        "results/logs/export_model_air.log",
    resources:
        gres=NPU_GRES,
        mem_mb=2000,
        runtime=20,
    params:
        export=config["export"],
    script:
        "../workflow_scripts/export_model.py"


rule write_model_card:
    input:
        best="results/best.txt",
        ap="results/summary/ap_by_epoch.csv",
        ckpt=best_weights,
        best_ckpt="results/best.ckpt",
        onnx="results/best.onnx",
        checks=expand("results/best.{fmt}.check.json", fmt=["onnx", "mindir"]),
    output:
        "results/best.md",
    log:
        "results/logs/write_model_card.log",
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../workflow_scripts/write_model_card.py"
