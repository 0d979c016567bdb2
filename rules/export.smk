# Export of the best model. results/best.txt comes from a checkpoint rule: the input of copy_best is decided only
# after it exists, and copy_best (and the exports after it) rerun only when the chosen checkpoint changes.


def best_weights(wildcards):
    best = checkpoints.select_best.get().output[0]
    return model_weights(Wildcards(fromdict={"model": read_best(best)}))


def best_model_name(wildcards):
    return read_best(checkpoints.select_best.get().output[0])


rule copy_best:
    input:
        best_weights,
    output:
        "results/best.ckpt",
    params:
        model=best_model_name,
    log:
        "results/logs/copy_best.log",
    shell:
        "cp {input:q} {output:q} 2> {log:q}"


rule export_model:
    input:
        ckpt="results/best.ckpt",
        images=DATA["val_images"],
    output:
        model="results/best.{fmt}",
        check="results/best.{fmt}.check.json",
    wildcard_constraints:
        fmt="mindir|onnx",
    params:
        export=config["export"],
    log:
        "results/logs/export_model_{fmt}.log",
    script:
        "../workflow_scripts/export_model.py"


def air_input(wildcards):
    # Raised while the DAG is built, before any job runs.
    if not ON_ASCEND:
        raise WorkflowError(air_unavailable_message("results/best.air"))
    return {"ckpt": "results/best.ckpt", "images": DATA["val_images"]}


rule export_air:
    input:
        unpack(air_input),
    output:
        model="results/best.air",
        check="results/best.air.check.json",
    params:
        export=config["export"],
    log:
        "results/logs/export_model_air.log",
    script:
        "../workflow_scripts/export_model.py"
