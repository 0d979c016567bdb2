# Training: one job writes every epoch's checkpoint. Its resumable state lives in
# results/train/state/<state key>/, which is not a declared output, so a failed or killed job (whose outputs
# Snakemake deletes) keeps its finished epochs and `--rerun-incomplete` resumes from the last one. The key
# (centerface_flow.training.train.state_key) leaves out what cannot change the epochs already trained: raising
# train.epochs (with a schedule that does not depend on the total) continues from the last epoch, and since this is
# a checkpoint rule whose epoch files keep their modification times, only the new epochs are tested. Other changed
# settings get a fresh state folder and train from the start, and so does other training data (a changed demo:
# section, other train_* paths, a labels file edited in place; centerface_flow.workflow.training_data_identity).
# Ask for results/train/done_{N}_epochs.json to train only.

INIT_WEIGHTS = {
    "released": "results/released/centerface.ckpt",
    "backbone": "results/backbone/mobilenet_v2.ckpt",
    "scratch": [],
    "checkpoint": config["train"][
        "init_path"
    ],  # a .ckpt of this project to continue from
}

TRAIN_STATE_ROOT = "results/train/state"
try:
    TRAIN_STATE_DIR = train_state_dir(
        config["train"],
        INIT_WEIGHTS[config["train"]["init"]] or "",
        TRAIN_STATE_ROOT,
        training_data_identity(
            config["dataset"], config["demo"], config["weights"], IS_DEMO
        ),
    )
except UserError as exc:
    raise WorkflowError(str(exc)) from None


checkpoint train_model:
    input:
        annotations="results/data/train.json",
        images=DATA["train_images"],
        init=INIT_WEIGHTS[config["train"]["init"]],
        rank_table=(
            f"results/rank_table/hccl_{TRAIN_DEVICES}p.json" if USE_RANK_TABLE else []
        ),
    output:
        # A record named by the epoch count: until this job has run for the configured epochs, the jobs that ask
        # this checkpoint for an epoch depend on a file that does not exist, so it is scheduled. The epoch files
        # results/train/epoch_{E}.ckpt are published by the job but not declared: Snakemake would touch declared
        # outputs, and an epoch continued from the state folder must keep its time so that it is not tested again.
        done=f"results/train/done_{config['train']['epochs']}_epochs.json",
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
        state_dir=str(TRAIN_STATE_DIR),
    script:
        "../workflow_scripts/train_model.py"


rule publish_training_metrics:
    # results/train/metrics.csv is this rule's, not train_model's: Snakemake deletes the outputs of a killed or
    # failed job, and once every epoch is final in the state folder nothing downstream would rerun training to
    # bring the file back. (The training job also links its progress there while it runs.)
    input:
        train_metrics,
    output:
        "results/train/metrics.csv",
    log:
        "results/logs/publish_training_metrics.log",
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        # staged next to the output and renamed, so metrics.csv is never half-written
        "(cp {input:q} {output:q}.part && chmod u+w {output:q}.part && mv {output:q}.part {output:q}) 2> {log:q}"
