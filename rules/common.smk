# Parse-time set-up: validate config.yaml, resolve the data set (real or embedded demo), list the models to test.
from centerface_flow.config import select_epochs, validate_config
from centerface_flow.errors import UserError
from centerface_flow.workflow import (
    air_unavailable_message,
    dataset_paths,
    epoch_is_final,
    on_ascend,
    read_best,
    released_onnx_or_empty,
    train_state_dir,
    training_data_identity,
)

try:
    config = validate_config(config)
    DATA, IS_DEMO = dataset_paths(config["dataset"])
    TEST_EPOCHS = select_epochs(config["test"]["epochs"], config["train"]["epochs"])
except UserError as exc:
    raise WorkflowError(str(exc)) from None

# Nothing here sets thread counts or the MindSpore environment: each job's script does (runtime.use_threads) from
# its own `threads`, which is its share of the CPUs locally (--cores) and on a cluster (--cpus-per-task).

GT_FILES = expand(
    "{gt}/wider_{s}_val.mat",
    gt=DATA["val_ground_truth"],
    s=["face", "easy", "medium", "hard"],
)
MODELS = [f"epoch_{e}" for e in TEST_EPOCHS] + (
    ["released"] if config["test"]["include_released"] else []
)
ON_ASCEND = on_ascend()
# Resolved here, in Snakemake's own environment, so that every job gets the same path.
RELEASED_ONNX = config["weights"]["released_onnx"] or released_onnx_or_empty()
TRAIN_DEVICES = config["train"]["devices"]
USE_RANK_TABLE = TRAIN_DEVICES > 1 and ON_ASCEND
# On Ascend, jobs that run the network ask Slurm for NPUs as generic resources (profiles/ascend): training one per
# rank, the others one. A login node has no NPU: CENTERFACE_DEVICE=Ascend tells the workflow where jobs will run.
# Empty elsewhere (no --gres). Training stays on one node (8 NPUs); README "On an Ascend cluster" shows more nodes.
NPUS_PER_NODE = 8
if ON_ASCEND and TRAIN_DEVICES > NPUS_PER_NODE:
    raise WorkflowError(
        f"train.devices: {TRAIN_DEVICES} > {NPUS_PER_NODE} NPUs of one node; the workflow trains on one node "
        "(see README, 'On an Ascend cluster', for a multi-node msrun)"
    )
TRAIN_GRES = f"npu:{TRAIN_DEVICES}" if ON_ASCEND else ""
NPU_GRES = "npu:1" if ON_ASCEND else ""


wildcard_constraints:
    model=r"released|epoch_\d+",
    epoch=r"\d+",
    n=r"\d+",


def weights_of(model):
    """The checkpoint a model name (released, epoch_E) stands for."""
    if model == "released":
        return "results/released/centerface.ckpt"
    path = f"results/train/{model}.ckpt"
    # An epoch already in the current settings' state folder is final; any other waits for the train_model
    # checkpoint (so raising train.epochs tests only the new epochs, and changed settings retest all).
    if not epoch_is_final(path, TRAIN_STATE_DIR):
        checkpoints.train_model.get()
    return path


def model_weights(wildcards):
    return weights_of(wildcards.model)


def train_metrics(wildcards):
    # The state folder's copy, which no job deletes (Snakemake deletes a killed job's outputs), so training is not
    # part of every DAG (editing its script would then retrain). Waits for training as the epochs do (weights_of)
    # when the last epoch is not final yet.
    weights_of(f"epoch_{config['train']['epochs']}")
    return f"{TRAIN_STATE_DIR}/metrics.csv"


def best_weights(wildcards):
    return weights_of(read_best(checkpoints.select_best.get().output[0]))


def best_model_name(wildcards):
    return read_best(checkpoints.select_best.get().output[0])


def air_input(wildcards):
    # Raised while the DAG is built, before any job runs.
    if not ON_ASCEND:
        raise WorkflowError(air_unavailable_message("results/best.air"))
    return {"ckpt": best_weights(wildcards), "images": DATA["val_images"]}
