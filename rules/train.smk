# Training: one job writes every epoch's checkpoint. Its resumable state lives in
# results/train/state/<hash of the train settings>/, which is not a declared output, so a failed or killed job
# (whose outputs Snakemake deletes) keeps its finished epochs and `--rerun-incomplete` resumes from the last one;
# changed settings get a fresh state folder and train from the start.

INIT_WEIGHTS = {
    "released": "results/released/centerface.ckpt",
    "backbone": "results/backbone/mobilenet_v2.ckpt",
    "scratch": [],
    "checkpoint": config["train"][
        "init_path"
    ],  # a .ckpt of this project to continue from
}


rule train_model:
    input:
        annotations="results/data/train.json",
        images=DATA["train_images"],
        init=INIT_WEIGHTS[config["train"]["init"]],
        rank_table=(
            f"results/rank_table/hccl_{TRAIN_DEVICES}p.json" if USE_RANK_TABLE else []
        ),
    output:
        expand(
            "results/train/epoch_{e}.ckpt", e=range(1, config["train"]["epochs"] + 1)
        ),
        metrics="results/train/metrics.csv",
    log:
        "results/logs/train_model.log",
    benchmark:
        "results/benchmarks/train_model.tsv"
    threads: 8  # capped at --cores by Snakemake
    resources:
        gres=TRAIN_GRES,
        devices=TRAIN_DEVICES,
        # per rank (msrun starts one process per device, each with its loader workers): 9.6 GB measured at the
        # model zoo's batch 8 x 512 px with 2 workers (docs/training.md), plus a margin
        mem_mb=12000 * TRAIN_DEVICES,
        # an hour per epoch at the shipped settings, plus start-up
        runtime=60 + 60 * config["train"]["epochs"],
    params:
        train=config["train"],
        state_dir="results/train/state",
    script:
        "../workflow_scripts/train_model.py"
