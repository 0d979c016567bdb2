"""CenterFace training: the model zoo's recipe, one checkpoint per epoch, crash-safe resume, data parallel.

Step: ``value_and_grad`` of (network + :class:`~centerface_flow.training.losses.CenterFaceLoss`) × a static loss
scale, grads
unscaled, (all-reduced across devices), checked with ``ms.amp.all_finite``; the Adam update is *skipped* when they
are not finite (the model zoo applied it anyway) and the step is counted in the metrics. Too many non-finite steps
in a row stop training with a clear error. (MindSpore's ``TrainOneStepWithLossScaleCell`` overflow check uses
NPU-only ops and fails on CPU, hence this functional form, as in mindyolo.)

Files, for ``out_dir`` and ``state_dir`` (default ``<out_dir>/.state``):

* ``state_dir/epoch_{E}.ckpt``: network + ``ModelMeta`` + extra entries (Adam moments, beta powers, global step,
  epoch, seed, config) written atomically by rank 0 when epoch ``E`` finishes; ``state_dir/metrics.csv`` likewise.
* ``out_dir/epoch_{E}.ckpt``: the same file, hard-linked (copied where links fail) after it is complete, and
  ``out_dir/metrics.csv``.

Resume: on start the last ``state_dir/epoch_{E}.ckpt`` that loads is restored (parameters, optimizer state, global
step) and training continues with epoch ``E + 1``, logging "resumed from epoch E"; every finished epoch is
re-published to ``out_dir``. Why the two directories: under Snakemake the rule declares ``out_dir/epoch_*.ckpt``
as outputs, and Snakemake deletes the outputs of a failed or killed job (and ``--rerun-incomplete`` deletes those of
an incomplete one) before rerunning it. The state directory is not a declared output, so the finished epochs
survive there and the rerun resumes from them and re-links the outputs.

Bit-identical resume on CPU: the data of epoch ``e`` depends only on (seed, e) (see ``data.pipeline``), the
optimizer state and BatchNorm running statistics are in the checkpoint, and the learning rate is indexed by the
restored global step, so an interrupted + resumed run replays the same computation as an uninterrupted one
(``tests/test_train.py`` checks the parameters are equal bit for bit).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from centerface_flow.errors import UserError
from centerface_flow.io import atomic_write_text, remove_stale_staging, staging_prefix

__all__ = [
    "ACTIVATIONS",
    "CRASH_ENV",
    "INITS",
    "METRIC_FIELDS",
    "TrainConfig",
    "find_last_epoch",
    "lr_schedule",
    "run_training",
    "run_workflow_job",
    "state_identity",
    "state_key",
    "train",
]

log = logging.getLogger(__name__)

METRIC_FIELDS = ("epoch", "step", "loss", "hm_loss", "wh_loss", "off_loss", "lm_loss", "lr", "images_per_s",
                 "skipped")
#: Test hook: ``CENTERFACE_CRASH_AFTER_STEPS=N`` makes the process SIGKILL itself after N optimizer steps.
CRASH_ENV = "CENTERFACE_CRASH_AFTER_STEPS"
#: Where the starting weights come from (``init``), and the backbone activations (``activation``).
INITS = ("scratch", "backbone", "released", "checkpoint")
ACTIVATIONS = ("relu", "relu6")
_OPT_PREFIX = "opt."


#: Largest training crop side: a 4096 x 4096 batch already needs tens of GB; larger is a typo, not a setting.
MAX_RESOLUTION = 4096


@dataclass
class TrainConfig:
    """Training options (defaults: the model zoo's recipe, ``default_config.yaml``)."""

    init: str = "backbone"  # scratch | backbone (ImageNet MobileNetV2) | released (fine-tune) | checkpoint
    init_path: str = ""  # weights for backbone / released / checkpoint
    head_width: int = 64  # scratch / backbone only; released / checkpoint take theirs from the file
    activation: str = "relu6"
    # Initial bias of the heatmap logit (scratch / backbone). 0 = the model zoo (sigmoid 0.5 everywhere);
    # CenterNet's focal-loss prior 0.1 is -2.19. See ``_build_network``.
    heatmap_bias: float = 0.0
    epochs: int = 140
    resolution: int = 512
    batch_size: int = 8  # per device
    lr: float = 0.004
    milestones: list[int] = field(default_factory=lambda: [90, 120])
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    cosine: bool = False
    eta_min: float = 0.0
    weight_decay: float = 0.0005
    loss_scale: float = 1024.0
    loss_weights: list[float] = field(default_factory=lambda: [1.0, 0.1, 1.0, 0.1])
    max_objs: int = 64
    # Faces with a side below min_face input pixels (after augmentation) are ignored: no centre, and their box is
    # left out of the heatmap loss (CenterNet ignore regions). 0 = every face trains (model zoo).
    min_face: float = 0.0
    small_face_weights: bool = True  # the model zoo's x5/x10/x15 (x0.1) size/offset weights for small faces
    freeze_bn: bool | None = None  # None: freeze for init=released (its BatchNorms are folded), else train them
    seed: int = 1
    num_workers: int = 2
    devices: int = 1
    device_ids: list[int] = field(default_factory=list)
    flip: float = 0.5
    color_aug: bool = True
    anchor_sampling: bool = True
    rand_crop: bool = True
    crop_scales: list[float] = field(default_factory=lambda: [0.6, 1.0])
    max_nonfinite_steps: int = 50

    @classmethod
    def from_dict(cls, values: dict, where: str = "training config") -> TrainConfig:
        """Build from a dict; an unknown key or a wrong type is a ``UserError`` naming it."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise UserError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})")
        cfg = cls(**{k: v for k, v in values.items() if v is not None or k == "freeze_bn"})
        cfg.validate(where)
        return cfg

    def validate(self, where: str = "training config") -> None:
        def bad(key, why):
            raise UserError(f"{where}: {key}: {why} (got {getattr(self, key)!r})")

        if self.init not in INITS:
            bad("init", f"must be one of {INITS}")
        if self.init != "scratch" and not self.init_path:
            bad("init_path", f"init={self.init} needs a weights file")
        for key in ("epochs", "batch_size", "devices", "head_width", "max_objs", "resolution"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                bad(key, "must be a positive integer")
        if self.resolution % 32 or self.resolution > MAX_RESOLUTION:
            bad("resolution", f"must be a multiple of 32 up to {MAX_RESOLUTION}")
        if not isinstance(self.lr, (int, float)) or not 0 < self.lr < math.inf:
            bad("lr", "must be a positive finite number")
        if not isinstance(self.gamma, (int, float)) or not 0 < self.gamma < math.inf:
            bad("gamma", "must be a positive finite number")
        if not all(isinstance(m, int) and m >= 1 for m in self.milestones):
            bad("milestones", "must be a list of epoch numbers")
        if not isinstance(self.min_face, (int, float)) or not 0 <= self.min_face < math.inf:
            bad("min_face", "must be a number >= 0 (input pixels)")
        if not isinstance(self.small_face_weights, bool):
            bad("small_face_weights", "must be true or false")
        if len(self.loss_weights) != 4:
            bad("loss_weights", "must be 4 numbers (heatmap, size, offset, landmarks)")
        if not isinstance(self.heatmap_bias, (int, float)) or not math.isfinite(self.heatmap_bias):
            bad("heatmap_bias", "must be a finite number")
        if self.activation not in ACTIVATIONS:
            bad("activation", f"must be one of {ACTIVATIONS}")
        if len(self.crop_scales) != 2 or not 0 < self.crop_scales[0] < self.crop_scales[1]:
            bad("crop_scales", "must be [low, high] with 0 < low < high")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def state_identity(settings: TrainConfig | dict) -> dict:
    """The settings that decide what the epochs already trained contain: all but ``num_workers`` (data order and
    augmentation depend on seed, epoch and image only) and, unless the schedule is cosine (whose every step depends
    on the total), ``epochs``. Two runs with the same identity share their state folder and their epochs."""
    values = settings.to_dict() if isinstance(settings, TrainConfig) else dict(settings)
    ignored = {"num_workers"} | (set() if values.get("cosine") else {"epochs"})
    return {k: v for k, v in values.items() if k not in ignored}


def state_key(cfg: TrainConfig, data: dict | None = None) -> str:
    """Name of the state folder of ``cfg``: a hash of :func:`state_identity` and of ``data``, what the epochs depend
    on besides the settings (the workflow's :func:`centerface_flow.workflow.training_data_identity`)."""
    import hashlib

    identity = state_identity(cfg) if data is None else {**state_identity(cfg), "data": data}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]


def lr_schedule(cfg: TrainConfig, steps_per_epoch: int) -> np.ndarray:
    """Per-step learning rates (epochs × steps_per_epoch,) float32: linear warm-up from 0, then multistep
    (``lr · gamma^#milestones passed``) or cosine to ``eta_min`` by epoch (the model zoo's schedulers)."""
    total = cfg.epochs * steps_per_epoch
    warm = int(cfg.warmup_epochs * steps_per_epoch)
    lrs = np.empty(total, np.float64)
    for i in range(total):
        epoch = i // steps_per_epoch  # 0-based
        if i < warm:
            lrs[i] = cfg.lr * (i + 1) / warm
        elif cfg.cosine:
            lrs[i] = cfg.eta_min + (cfg.lr - cfg.eta_min) * (1 + math.cos(math.pi * epoch / cfg.epochs)) / 2
        else:
            lrs[i] = cfg.lr * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    return lrs.astype(np.float32)


def find_last_epoch(state_dir: str | os.PathLike) -> tuple[int, Path | None]:
    """The highest ``E`` with a complete ``state_dir/epoch_{E}.ckpt`` (0, None when there is none)."""
    best = (0, None)
    for path in Path(state_dir).glob("epoch_*.ckpt"):
        stem = path.stem.split("_", 1)[1]
        if stem.isdigit() and int(stem) > best[0]:
            best = (int(stem), path)
    return best


def _publish(src: Path, dst: Path) -> None:
    """Make ``dst`` the same content as ``src`` atomically (hard link, or copy across file systems)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(dst)
    if dst.is_file() and os.path.samefile(src, dst):  # already published (a rename onto a hard link does nothing)
        return
    tmp = dst.with_name(f"{staging_prefix(dst)}link")
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _build_network(cfg: TrainConfig):
    """Network + ModelMeta for ``cfg.init``.

    For ``scratch`` / ``backbone`` the heatmap head's bias starts at ``cfg.heatmap_bias``. The model zoo leaves it
    at 0: every cell then starts at sigmoid 0.5, the focal loss starts in the hundreds, and the fastest way down
    is to make all heatmap weights negative over the (non-negative, post-ReLU) neck features. A face centre is
    then a cell where those features are 0, whose logit can never exceed the bias (~0): from scratch, centre
    scores stalled at ~0.47 and AP on 8 overfitted images at 0.66. CenterNet's prior (bias -2.19, sigmoid 0.1)
    avoids that collapse (``benchmarks/overfit_check.py``)."""
    import mindspore as ms

    from centerface_flow.checkpoint import ModelMeta, load_checkpoint
    from centerface_flow.nets.centerface import CenterFace

    if cfg.init in ("scratch", "backbone"):
        activation, params, backbone_meta = cfg.activation, {}, None
        if cfg.init == "backbone":
            params, backbone_meta, _ = load_checkpoint(cfg.init_path)
            if backbone_meta.activation != activation:
                log.info("%s was trained with %s: the backbone uses it (config activation %s ignored)",
                         cfg.init_path, backbone_meta.activation, activation)
            activation = backbone_meta.activation
        net = CenterFace(cfg.head_width, activation, init_seed=cfg.seed)
        if cfg.heatmap_bias:
            bias = net.hm_head[0].bias
            bias.set_data(ms.Tensor(np.full(bias.shape, cfg.heatmap_bias, np.float32)))
        meta = ModelMeta.model_zoo(cfg.head_width, activation, source=f"trained from {cfg.init}")
        if backbone_meta is not None:  # train in the pixel format the backbone was trained on
            meta = meta.with_input_of(backbone_meta)
        if cfg.init == "backbone":
            own = {p.name: p for p in net.get_parameters()}
            base = {k: v for k, v in params.items() if k.startswith("base.") and k in own}
            if not base:
                raise UserError(f"{cfg.init_path}: no 'base.*' backbone parameters matching CenterFace")
            missing = sorted(k for k in own if k.startswith("base.") and k not in base)
            if missing:
                raise UserError(f"{cfg.init_path}: backbone lacks {len(missing)} parameters, e.g. {missing[:3]}")
            ms.load_param_into_net(net, base, strict_load=False)
            log.info("loaded %d backbone tensors from %s", len(base), cfg.init_path)
        return net, meta
    if cfg.heatmap_bias:
        log.info("heatmap_bias ignored: init=%s keeps the trained heatmap head", cfg.init)
    params, meta, _ = load_checkpoint(cfg.init_path)
    net = CenterFace(meta.head_width, meta.activation, init_seed=cfg.seed)
    missing, _ = ms.load_param_into_net(net, params, strict_load=False)
    if missing:
        raise UserError(f"{cfg.init_path}: parameters missing for CenterFace: {missing[:5]}")
    meta = dataclasses.replace(meta, source=f"fine-tuned from {Path(cfg.init_path).name} ({meta.source})")
    log.info("initialised from %s (%s)", cfg.init_path, cfg.init)
    return net, meta


#: The first convolution sees the raw input; with ``rgb255`` input its inputs are 255x those of a normalised input.
FIRST_CONV = "base.need_fp1.0.features.0.weight"


def _param_groups(net, meta, lrs: np.ndarray) -> list[dict]:
    """Adam groups: no weight decay on biases and BatchNorm (model zoo); for ``rgb255`` weights (the released model)
    the first convolution gets lr / 255. Adam moves every weight by about lr per step whatever its scale, and that
    layer's weights are ~255x smaller (mean |w| 1e-3): at the full lr 2 fine-tuning epochs changed it by 5 %
    and cost ~5 AP points on held-out images, while every other layer changed by < 0.1 %."""
    import mindspore as ms

    params = net.trainable_params()
    first = [p for p in params if p.name == FIRST_CONV and meta.input_format == "rgb255"]
    no_decay = [p for p in params if p.name.endswith((".bias", ".gamma", ".beta"))]
    taken = {p.name for p in first + no_decay}
    decay = [p for p in params if p.name not in taken]
    groups = [{"params": no_decay, "weight_decay": 0.0}, {"params": decay}]
    if first:
        groups.append({"params": first, "lr": ms.Tensor(lrs / 255.0)})
        log.info("rgb255 input: %s trains with lr / 255", FIRST_CONV)
    return groups


def _step_function(net, loss_cell, optimizer, loss_scale: float, world: int):
    """A jitted ``step(image, *targets) -> (loss, parts, finite)`` that updates only when grads are finite."""
    import mindspore as ms
    from mindspore import nn, ops

    scale = float(loss_scale)
    reducer = nn.DistributedGradReducer(optimizer.parameters, mean=True, degree=world) if world > 1 else None

    def forward(image, *targets):
        loss, parts = loss_cell(*net(image), *targets)
        return loss * scale, parts

    grad_fn = ms.value_and_grad(forward, None, optimizer.parameters, has_aux=True)

    @ms.jit
    def step(image, *targets):
        (loss, parts), grads = grad_fn(image, *targets)
        grads = tuple(g / scale for g in grads)
        if reducer is not None:
            grads = reducer(grads)
        finite = ms.amp.all_finite(grads)
        if finite:
            loss = ops.depend(loss, optimizer(grads))
        return loss / scale, parts, finite

    return step


def _optimizer_state(optimizer, net_names: set[str]) -> dict[str, np.ndarray]:
    """Adam moments, beta powers and the global step. Not ``learning_rate``: the per-step schedule is rebuilt from
    the config, so a resumed run may change ``epochs`` (the array's length)."""
    return {_OPT_PREFIX + p.name: p.asnumpy() for p in optimizer.get_parameters()
            if p.name not in net_names and not p.name.startswith("learning_rate")}


def _restore(net, optimizer, path: Path) -> dict:
    import mindspore as ms

    from centerface_flow.checkpoint import load_checkpoint

    params, _, extra = load_checkpoint(path)
    ms.load_param_into_net(net, params, strict_load=True)
    opt_params = {p.name: p for p in optimizer.get_parameters()}
    for key, value in extra.items():
        if key.startswith(_OPT_PREFIX):
            name = key[len(_OPT_PREFIX):]
            if name.startswith("learning_rate"):  # a stored learning rate is ignored; the config sets the schedule
                continue
            if name not in opt_params:
                raise UserError(f"{path}: optimizer entry {name!r} does not fit this run")
            opt_params[name].set_data(ms.Tensor(np.asarray(value)).astype(opt_params[name].dtype))
    return extra


def _read_metrics(path: Path, upto_epoch: int) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if int(row["epoch"]) <= upto_epoch]


def _write_metrics(path: Path, rows: list[dict]) -> None:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def train(cfg: TrainConfig, annotations: str | os.PathLike, image_dir: str | os.PathLike, out_dir: str | os.PathLike,
          state_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Train ``cfg.epochs`` epochs (resuming from ``state_dir`` if it holds finished epochs); return the last
    epoch's checkpoint in ``out_dir``. See the module docstring for the files written."""
    from centerface_flow import runtime
    from centerface_flow.training.distributed import init_data_parallel

    ms = runtime.mindspore("graph")
    from mindspore import nn
    from tqdm import tqdm

    from centerface_flow.checkpoint import save_checkpoint
    from centerface_flow.data.annotations import load_coco
    from centerface_flow.data.augment import AugmentConfig
    from centerface_flow.data.pipeline import InputSpec, TrainSource, iterate_batches
    from centerface_flow.training.losses import CenterFaceLoss

    out_dir = Path(out_dir)
    state_dir = Path(state_dir) if state_dir else out_dir / ".state"
    rank, world = init_data_parallel(cfg.devices)
    ms.set_seed(cfg.seed)
    net, meta = _build_network(cfg)
    freeze_bn = cfg.init == "released" if cfg.freeze_bn is None else cfg.freeze_bn
    net.set_train(True)
    if freeze_bn:
        for _, cell in net.cells_and_names():
            if isinstance(cell, nn.BatchNorm2d):
                cell.set_train(False)  # running statistics used and kept; gamma/beta still learn
    spec = InputSpec(meta.input_format, meta.mean, meta.std, meta.landmark_origin)
    augment = AugmentConfig(cfg.resolution, cfg.anchor_sampling, cfg.rand_crop, tuple(cfg.crop_scales), cfg.flip,
                            cfg.color_aug)
    source = TrainSource(load_coco(annotations), image_dir, augment, spec, cfg.seed, cfg.max_objs, rank, world,
                         cfg.min_face, cfg.small_face_weights)
    steps_per_epoch = len(source) // cfg.batch_size
    if steps_per_epoch == 0:
        raise UserError(f"batch_size {cfg.batch_size} exceeds the {len(source)} images per device")
    lrs = lr_schedule(cfg, steps_per_epoch)
    optimizer = nn.Adam(_param_groups(net, meta, lrs), learning_rate=ms.Tensor(lrs), weight_decay=cfg.weight_decay)
    net_names = {p.name for p in net.get_parameters()}

    start, last = find_last_epoch(state_dir)
    if start:
        extra = _restore(net, optimizer, last)
        saved = state_identity(json.loads(extra.get("config", "{}")))
        changed = sorted(k for k, v in state_identity(cfg).items() if k in saved and saved[k] != v)
        if changed:
            log.warning("resuming with changed settings %s (was %s)", changed, {k: saved[k] for k in changed})
        log.info("resumed from epoch %d (%s)", start, last)
    rows = _read_metrics(state_dir / "metrics.csv", start)
    if rank == 0:
        for e in range(1, min(start, cfg.epochs) + 1):
            if (state_dir / f"epoch_{e}.ckpt").is_file():
                _publish(state_dir / f"epoch_{e}.ckpt", out_dir / f"epoch_{e}.ckpt")
    step_fn = _step_function(net, CenterFaceLoss(tuple(cfg.loss_weights)), optimizer, cfg.loss_scale, world)
    crash_after = int(os.environ.get(CRASH_ENV, "0") or 0)
    global_step = start * steps_per_epoch
    bad_in_row = 0
    for epoch in range(start + 1, cfg.epochs + 1):
        source.set_epoch(epoch)
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress or rank != 0,
                   unit="step", dynamic_ncols=True, mininterval=2.0)
        tick = time.perf_counter()
        skipped = 0
        for i, batch in enumerate(iterate_batches(source, cfg.batch_size, cfg.num_workers)):
            loss, parts, finite = step_fn(*(ms.Tensor(a) for a in batch))
            loss, parts, finite = float(loss.asnumpy()), parts.asnumpy(), bool(finite.asnumpy())
            now = time.perf_counter()
            speed = cfg.batch_size * world / max(now - tick, 1e-9)
            tick = now
            if not finite or not math.isfinite(loss):
                skipped += 1
                bad_in_row += 1
                if bad_in_row >= cfg.max_nonfinite_steps:
                    raise UserError(f"training diverged: {bad_in_row} steps in a row with non-finite loss or "
                                    f"gradients (epoch {epoch}, step {i + 1}); lower lr (now {cfg.lr}) or loss_scale")
            else:
                bad_in_row = 0
            rows.append({"epoch": epoch, "step": global_step + 1, "loss": f"{loss:.6g}",
                         **{n: f"{v:.6g}" for n, v in zip(METRIC_FIELDS[3:7], parts)},
                         "lr": f"{lrs[global_step]:.6g}", "images_per_s": f"{speed:.3f}", "skipped": int(not finite)})
            global_step += 1
            bar.set_postfix(loss=f"{loss:.3f}", img_s=f"{speed:.2f}", refresh=False)
            bar.update(1)
            if crash_after and global_step >= crash_after:
                log.warning("%s=%d reached: killing this process (test hook)", CRASH_ENV, crash_after)
                os.kill(os.getpid(), signal.SIGKILL)
        bar.close()
        if skipped:
            log.warning("epoch %d: skipped %d of %d updates (non-finite gradients)", epoch, skipped, steps_per_epoch)
        if rank == 0:
            extra = {**_optimizer_state(optimizer, net_names), "epoch": epoch, "global_step": global_step,
                     "seed": cfg.seed, "config": json.dumps(cfg.to_dict(), sort_keys=True)}
            params = {p.name: p for p in net.get_parameters()}
            save_checkpoint(state_dir / f"epoch_{epoch}.ckpt", params, meta, extra)
            _write_metrics(state_dir / "metrics.csv", rows)
            _publish(state_dir / f"epoch_{epoch}.ckpt", out_dir / f"epoch_{epoch}.ckpt")
            _publish(state_dir / "metrics.csv", out_dir / "metrics.csv")
            mean = np.mean([float(r["loss"]) for r in rows if int(r["epoch"]) == epoch])
            log.info("epoch %d/%d done: mean loss %.4f, lr %.3g -> %s", epoch, cfg.epochs, mean,
                     lrs[global_step - 1], out_dir / f"epoch_{epoch}.ckpt")
    if rank == 0 and not (out_dir / "metrics.csv").exists() and (state_dir / "metrics.csv").exists():
        _publish(state_dir / "metrics.csv", out_dir / "metrics.csv")
    return out_dir / f"epoch_{cfg.epochs}.ckpt"


def run_training(cfg: TrainConfig, annotations: str | os.PathLike, image_dir: str | os.PathLike,
                 out_dir: str | os.PathLike, state_dir: str | os.PathLike | None = None,
                 rank_table: str | os.PathLike | None = None, progress: bool = False) -> int:
    """Train ``cfg`` here, or, for ``cfg.devices > 1``, launch the ranks with MindSpore's ``msrun`` (on Ascend with
    the HCCL ``rank_table``; inside a multi-node Slurm step each node launches its share). Returns the exit status.
    """
    import subprocess
    import sys

    from centerface_flow.training import distributed

    if cfg.devices > 1 and not distributed.in_launched_worker():
        import yaml

        out_dir = Path(out_dir)
        state_dir = Path(state_dir) if state_dir else out_dir / ".state"
        config_file = state_dir / "train_config.yaml"  # what every rank reads
        atomic_write_text(config_file, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        argv = ["train", "--config", str(config_file), "--annotations", str(annotations), "--images", str(image_dir),
                "--out-dir", str(out_dir), "--state-dir", str(state_dir)] + ([] if progress else ["--no-progress"])
        rank_table = rank_table or os.environ.get("RANK_TABLE_FILE") or None
        nodes, node_rank, master_addr = distributed.slurm_layout()
        cmd = distributed.msrun_command(cfg.devices, argv, out_dir / "msrun_logs",
                                        master_port=distributed.SLURM_MASTER_PORT if nodes > 1 else None,
                                        rank_table_file=str(Path(rank_table).resolve()) if rank_table else None,
                                        nodes=nodes, node_rank=node_rank, master_addr=master_addr)
        log.info("launching %d of %d workers: %s", cfg.devices // nodes, cfg.devices, distributed.quote(cmd))
        return subprocess.call(cmd, env=distributed.msrun_env(workers=cfg.devices // nodes), stdout=sys.stderr)
    from centerface_flow import runtime

    runtime.mindspore("graph")
    train(cfg, annotations, image_dir, out_dir, state_dir, progress=progress)
    return 0


def run_workflow_job(settings: dict, annotations: str | os.PathLike, image_dir: str | os.PathLike,
                     out_dir: str | os.PathLike, state_dir: str | os.PathLike, done: str | os.PathLike,
                     rank_table: str | os.PathLike | None = None) -> None:
    """The ``train_model`` rule: ``settings`` (the ``train:`` section, ``init_path`` resolved) trained in
    ``state_dir``, the folder named by :func:`state_key` of the settings and the training data
    (:func:`centerface_flow.workflow.train_state_dir`), so that a rerun after a crash, or with more epochs of a
    schedule that does not depend on the total, continues from the last finished epoch. ``done`` (JSON: epochs,
    state folder) is written last; a failed launch raises :class:`UserError`."""
    cfg = TrainConfig.from_dict(settings, where="config.yaml train")
    state_dir = Path(state_dir)
    if cfg.cosine:
        log.info("cosine schedule: every step depends on train.epochs, so the state folder %s is for exactly %d "
                 "epochs (changing train.epochs trains from epoch 1)", state_dir, cfg.epochs)
    else:
        log.info("state folder %s (train.epochs is not part of its key: more epochs continue from the last one)",
                 state_dir)
    status = run_training(cfg, annotations, image_dir, out_dir, state_dir, rank_table)
    if status:
        raise UserError(f"training failed (exit status {status}); see the log above")
    atomic_write_text(done, json.dumps({"epochs": cfg.epochs, "state_dir": str(state_dir)}) + "\n")
