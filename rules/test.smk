# Test stage, split so that NMS settings never rerun the network:
#   infer_candidates       network + peak extraction + decode -> top-K candidates per image (params: infer)
#   postprocess_predictions  score threshold + NMS -> WIDER prediction tree (params: postprocess)


rule infer_candidates:
    input:
        weights=model_weights,
        images=DATA["val_images"],
    output:
        "results/candidates/{model}.npz",
    log:
        "results/logs/infer_candidates/{model}.log",
    benchmark:
        "results/benchmarks/infer_candidates/{model}.tsv"
    threads: 8  # capped at --cores by Snakemake
    resources:
        gres=NPU_GRES,
        mem_mb=4000,
        runtime=120,
    params:
        infer=config["infer"],
    script:
        "../workflow_scripts/infer_candidates.py"


rule postprocess_predictions:
    input:
        "results/candidates/{model}.npz",
    output:
        directory("results/predictions/{model}"),
    log:
        "results/logs/postprocess_predictions/{model}.log",
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        postprocess=config["postprocess"],
    script:
        "../workflow_scripts/postprocess_predictions.py"
