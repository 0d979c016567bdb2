"""Training: config validation, lr schedules, data order, and (slow) kill -9 + resume ending bit-identical."""
from __future__ import annotations

import csv
import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from centerface_flow.data.augment import AugmentConfig
from centerface_flow.data.pipeline import InputSpec, TrainSource, epoch_order, iterate_batches
from centerface_flow.errors import UserError
from centerface_flow.training.train import CRASH_ENV, TrainConfig, find_last_epoch, lr_schedule


def make_dataset(root: Path, n: int = 2, size: int = 96) -> Path:
    """``n`` synthetic images with 2 drawn faces each (+ landmarks) and their COCO JSON; returns the JSON path."""
    from centerface_flow.data.annotations import read_labels, to_coco, write_coco

    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        image = rng.integers(60, 120, (size, size, 3)).astype(np.uint8)
        lines.append(f"# ev/img_{i}.jpg")
        for _ in range(2):
            w = int(rng.integers(size // 6, size // 3))
            x, y = (int(v) for v in rng.integers(0, size - w, 2))
            cv2.ellipse(image, (x + w // 2, y + w // 2), (w // 2, w // 2), 0, 0, 360, (40, 170, 230), -1)
            pts = [(x + 0.3 * w, y + 0.35 * w), (x + 0.7 * w, y + 0.35 * w), (x + 0.5 * w, y + 0.55 * w),
                   (x + 0.35 * w, y + 0.75 * w), (x + 0.65 * w, y + 0.75 * w)]
            lines.append(f"{x} {y} {w} {w} " + " ".join(f"{a:.1f} {b:.1f} 0.0" for a, b in pts) + " 0.9")
        (root / "images" / "ev").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / "ev" / f"img_{i}.jpg"), image)
    (root / "label.txt").write_text("\n".join(lines) + "\n")
    write_coco(to_coco(read_labels(root / "label.txt"), root / "images"), root / "train.json")
    return root / "train.json"


def test_config_rejects_unknown_and_bad_keys():
    with pytest.raises(UserError, match="unknown key 'learning_rate'"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(UserError, match="init_path"):
        TrainConfig.from_dict({"init": "released"})
    with pytest.raises(UserError, match="resolution"):
        TrainConfig.from_dict({"init": "scratch", "resolution": 100})
    cfg = TrainConfig.from_dict({"init": "scratch", "epochs": 3, "milestones": [2]})
    assert cfg.epochs == 3 and cfg.lr == 0.004 and cfg.loss_weights == [1.0, 0.1, 1.0, 0.1]


def test_config_target_and_init_options():
    cfg = TrainConfig.from_dict({"init": "scratch"})
    assert cfg.heatmap_bias == 0.0 and cfg.min_face == 0.0 and cfg.small_face_weights  # model zoo defaults
    cfg = TrainConfig.from_dict({"init": "scratch", "heatmap_bias": -2.19, "min_face": 8, "small_face_weights": False})
    assert cfg.heatmap_bias == -2.19 and cfg.min_face == 8 and not cfg.small_face_weights
    for key, value in (("heatmap_bias", float("nan")), ("min_face", -1), ("small_face_weights", "no")):
        with pytest.raises(UserError, match=key):
            TrainConfig.from_dict({"init": "scratch", key: value})


def test_heatmap_bias_initialises_the_heatmap_head():
    from centerface_flow import runtime

    runtime.mindspore()
    from centerface_flow.training.train import _build_network

    net, _ = _build_network(TrainConfig.from_dict({"init": "scratch", "head_width": 8, "heatmap_bias": -2.19}))
    np.testing.assert_allclose(net.hm_head[0].bias.asnumpy(), [-2.19])
    assert np.abs(net.wh_head.bias.asnumpy()).max() == 0  # other heads keep the model zoo's zero bias
    net, _ = _build_network(TrainConfig.from_dict({"init": "scratch", "head_width": 8}))
    assert net.hm_head[0].bias.asnumpy()[0] == 0.0


def test_source_passes_min_face_and_small_face_weights(tmp_path):
    from centerface_flow.data.annotations import load_coco
    from centerface_flow.data.targets import IGNORE, TARGET_KEYS

    samples = load_coco(make_dataset(tmp_path, n=1, size=96))  # faces 16-31 px
    aug = AugmentConfig(96, anchor_sampling=False, rand_crop=False, flip=0.0, color=False)
    rng = np.random.default_rng(0)
    plain = dict(zip(TARGET_KEYS, TrainSource(samples, tmp_path / "images", aug, InputSpec(), 1).load(0, rng)[1:]))
    big = TrainSource(samples, tmp_path / "images", aug, InputSpec(), 1, min_face=40.0, small_face_weights=False)
    ignored = dict(zip(TARGET_KEYS, big.load(0, np.random.default_rng(0))[1:]))
    assert plain["ind"].sum() == 2 and (plain["heatmap"] == IGNORE).sum() == 0
    assert ignored["ind"].sum() == 0 and (ignored["heatmap"] == IGNORE).sum() > 0
    keep = TrainSource(samples, tmp_path / "images", aug, InputSpec(), 1, small_face_weights=False)
    assert set(np.unique(dict(zip(TARGET_KEYS, keep.load(0, rng)[1:]))["weight"])) == {0.0, 1.0}


def test_lr_schedules():
    cfg = TrainConfig(init="scratch", epochs=4, lr=1.0, milestones=[2, 3], gamma=0.1)
    np.testing.assert_allclose(lr_schedule(cfg, 2), [1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01], rtol=1e-6)
    cfg = TrainConfig(init="scratch", epochs=4, lr=1.0, milestones=[], warmup_epochs=1, cosine=True)
    lrs = lr_schedule(cfg, 2)
    np.testing.assert_allclose(lrs[:2], [0.5, 1.0])
    assert lrs[2] == pytest.approx((1 + np.cos(np.pi / 4)) / 2) and (np.diff(lrs[2:]) <= 0).all()


def test_epoch_order_is_a_deterministic_sharded_permutation():
    a = epoch_order(10, seed=3, epoch=2)
    np.testing.assert_array_equal(a, epoch_order(10, seed=3, epoch=2))
    assert sorted(a) == list(range(10)) and not np.array_equal(a, epoch_order(10, seed=3, epoch=3))
    shards = [epoch_order(10, 3, 2, rank=r, world=3) for r in range(3)]
    assert all(len(s) == 4 for s in shards)  # padded to 12, 4 per rank
    assert set(np.concatenate(shards)) == set(range(10))
    np.testing.assert_array_equal(np.concatenate(shards)[:10].size, 10)


def test_pipeline_batches_and_input_formats(tmp_path):
    from centerface_flow.data.annotations import load_coco

    samples = load_coco(make_dataset(tmp_path, n=3))
    cfg = AugmentConfig(input_size=64)
    src = TrainSource(samples, tmp_path / "images", cfg, InputSpec(), seed=1)
    batches = list(iterate_batches(src, 2))
    assert len(batches) == 1  # 3 images, batch 2, remainder dropped
    image, heatmap, ind, _, _, _, _, lms = batches[0]
    assert image.shape == (2, 3, 64, 64) and heatmap.shape == (2, 1, 16, 16) and lms.shape == (2, 10, 16, 16)
    assert ind.sum() >= 1 and heatmap.max() == 1.0
    again = next(iter(iterate_batches(src, 2)))
    for x, y in zip(batches[0], again):
        np.testing.assert_array_equal(x, y)
    rgb = TrainSource(samples, tmp_path / "images", cfg, InputSpec(input_format="rgb255"), seed=1)
    raw = next(iter(iterate_batches(rgb, 2)))[0]
    assert raw.mean() > 30 and raw.max() > 100  # 0-255 RGB (colour jitter is unclipped, as in the model zoo)


def _train_cmd(json_path: Path, out: Path, epochs: int = 3) -> list[str]:
    return [sys.executable, "-m", "centerface_flow.cli", "train", "--annotations", str(json_path), "--images",
            str(json_path.parent / "images"), "--out-dir", str(out), "--init", "scratch", "--epochs", str(epochs),
            "--resolution", "64", "--batch-size", "1", "--num-workers", "0", "--set", "head_width=8",
            "--set", "milestones=[2]", "--no-progress"]


def _params(path: Path) -> dict[str, np.ndarray]:
    from centerface_flow import runtime

    runtime.mindspore()
    from centerface_flow.checkpoint import load_checkpoint

    params, _, extra = load_checkpoint(path)
    return {**{k: v.asnumpy() for k, v in params.items()}, **{k: np.asarray(v) for k, v in extra.items()}}


@pytest.mark.slow
def test_kill9_mid_epoch_then_resume_is_bit_identical(tmp_path):
    json_path = make_dataset(tmp_path, n=2)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # uninterrupted reference: 3 epochs x 2 steps
    ref = subprocess.run(_train_cmd(json_path, tmp_path / "ref"), env=env, capture_output=True, text=True, check=False)
    assert ref.returncode == 0, ref.stderr[-2000:]
    # killed with SIGKILL after 3 steps = in the middle of epoch 2
    out = tmp_path / "run"
    crashed = subprocess.run(_train_cmd(json_path, out), env={**env, CRASH_ENV: "3"}, capture_output=True, text=True, check=False)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert find_last_epoch(out / ".state")[0] == 1 and not (out / "epoch_2.ckpt").exists()
    # Snakemake deletes a failed job's declared outputs; the state directory survives
    (out / "epoch_1.ckpt").unlink()
    (out / "metrics.csv").unlink()
    resumed = subprocess.run(_train_cmd(json_path, out), env=env, capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from epoch 1" in resumed.stderr
    for e in (1, 2, 3):
        assert (out / f"epoch_{e}.ckpt").is_file()
    a, b = _params(tmp_path / "ref" / "epoch_3.ckpt"), _params(out / "epoch_3.ckpt")
    assert a.keys() == b.keys()
    differing = [k for k in a if k != "config" and not np.array_equal(a[k], b[k])]
    assert not differing, differing[:5]

    def rows(path):
        with open(path, newline="") as handle:
            return [{k: v for k, v in r.items() if k != "images_per_s"} for r in csv.DictReader(handle)]

    assert rows(tmp_path / "ref" / "metrics.csv") == rows(out / "metrics.csv")
    assert len(rows(out / "metrics.csv")) == 6
    # asking for more epochs later continues from the last one (the lr schedule is rebuilt for the new length)
    longer = subprocess.run(_train_cmd(json_path, out, epochs=4), env=env, capture_output=True, text=True, check=False)
    assert longer.returncode == 0, longer.stderr[-2000:]
    assert "resumed from epoch 3" in longer.stderr and (out / "epoch_4.ckpt").is_file()
    assert len(rows(out / "metrics.csv")) == 8


@pytest.mark.slow
def test_persistent_nonfinite_loss_stops_with_clear_error(tmp_path):
    json_path = make_dataset(tmp_path, n=2)
    cmd = _train_cmd(json_path, tmp_path / "run", epochs=2) + ["--set", "loss_scale=1e38", "--set",
                                                                 "max_nonfinite_steps=2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "training diverged: 2 steps in a row with non-finite" in proc.stderr
    assert not (tmp_path / "run" / "epoch_1.ckpt").exists()


def test_init_from_backbone_and_checkpoint(tmp_path):
    from centerface_flow import runtime

    runtime.mindspore()
    from centerface_flow.checkpoint import ModelMeta, save_checkpoint
    from centerface_flow.convert.backbone import convert_backbone
    from centerface_flow.nets.centerface import CenterFace
    from centerface_flow.training.train import _build_network

    source = CenterFace(8, "relu", init_seed=5)
    raw_rgb = ModelMeta(8, "relu", "rgb255", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "center", source="test")
    full = save_checkpoint(tmp_path / "full.ckpt", source, raw_rgb)
    backbone = convert_backbone(tmp_path / "bb.ckpt", from_ckpt=full)
    want = {p.name: p.asnumpy() for p in source.get_parameters()}

    net, meta = _build_network(TrainConfig.from_dict({"init": "backbone", "init_path": str(backbone),
                                                      "head_width": 16}))
    assert meta.activation == "relu" and meta.head_width == 16  # activation follows the backbone's training
    assert meta.input_format == "rgb255" and meta.landmark_origin == "cell"  # so does the pixel format
    got = {p.name: p.asnumpy() for p in net.get_parameters()}
    assert all(np.array_equal(got[k], want[k]) for k in want if k.startswith("base."))
    assert got["dla_up.conv.0.weight"].shape[0] == 16

    net, meta = _build_network(TrainConfig.from_dict({"init": "checkpoint", "init_path": str(full)}))
    got = {p.name: p.asnumpy() for p in net.get_parameters()}
    assert meta.head_width == 8 and all(np.array_equal(got[k], want[k]) for k in want)
    # the training targets follow the init weights' conventions (released model: landmarks from the box centre)
    assert meta.landmark_origin == "center" and meta.input_format == "rgb255"
    with pytest.raises(UserError, match="not found"):
        _build_network(TrainConfig.from_dict({"init": "backbone", "init_path": str(tmp_path / "none.ckpt")}))


def test_state_key_leaves_out_what_cannot_change_trained_epochs():
    from centerface_flow.training.train import TrainConfig, state_key

    base = TrainConfig(init="scratch", epochs=3, milestones=[2])
    assert state_key(base) == state_key(dataclasses.replace(base, epochs=4))  # multistep: epochs 1-3 unchanged
    assert state_key(base) == state_key(dataclasses.replace(base, num_workers=7))
    assert state_key(base) != state_key(dataclasses.replace(base, lr=0.01))
    cosine = dataclasses.replace(base, cosine=True)
    assert state_key(cosine) != state_key(dataclasses.replace(cosine, epochs=4))  # every cosine step depends on it


def test_state_key_follows_the_training_data(tmp_path):
    """Other training data trains afresh: a changed demo section, other paths, labels edited in place."""
    from centerface_flow.workflow import train_state_dir, training_data_identity

    settings, root = {"init": "scratch", "epochs": 3}, tmp_path / "state"
    weights = {"released_onnx": "", "backbone_pth": ""}

    def state(dataset, demo, is_demo):
        return train_state_dir(settings, "", root, training_data_identity(dataset, demo, weights, is_demo))

    empty = dict.fromkeys(("train_images", "train_labels", "val_images", "val_ground_truth"), "")
    assert state(empty, {"domain": "rotated"}, True) == state(empty, {"domain": "rotated"}, True)
    assert state(empty, {"domain": "rotated"}, True) != state(empty, {"domain": "upright"}, True)
    labels = tmp_path / "label.txt"
    labels.write_text("# a/1.jpg\n10 10 20 20\n")
    real = {**empty, "train_images": str(tmp_path / "images"), "train_labels": str(labels)}
    first = state(real, {}, False)
    assert first != state({**real, "train_images": str(tmp_path / "other")}, {}, False)
    labels.write_text("# a/1.jpg\n10 10 22 20\n")
    assert state(real, {}, False) != first
    assert first.parent == root


def test_workflow_job_names_bad_settings_and_a_failed_training(tmp_path, monkeypatch):
    from centerface_flow import workflow
    from centerface_flow.errors import UserError
    from centerface_flow.training import train

    with pytest.raises(UserError, match="crop_scales"):
        workflow.train_state_dir({"init": "scratch", "crop_scales": [1.0, 0.5]}, "", tmp_path)
    monkeypatch.setattr(train, "run_training", lambda *a, **k: 3)
    done = tmp_path / "done_1_epochs.json"
    with pytest.raises(UserError, match="exit status 3"):
        train.run_workflow_job({"init": "scratch", "epochs": 1}, "a.json", "im", tmp_path / "o", tmp_path / "s", done)
    assert not done.exists()
