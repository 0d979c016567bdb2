"""profiles/ascend and multi-node Ascend training, short of NPUs: the sbatch options the workflow's jobs are
submitted with, the HCCL rank table for 2 nodes x 8 devices, and msrun's command line on each node."""
from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from centerface_flow.training import distributed

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
NODES = {"10.0.0.7": [f"192.168.{d}.7" for d in range(8)], "10.0.0.8": [f"192.168.{d}.8" for d in range(8)]}


def test_rank_table_for_two_nodes_of_eight(tmp_path):
    """Each node writes its own table (centerface rank-table), one merged table numbers ranks 0..15 across both."""
    from centerface_flow.cli import main

    paths = []
    for server, ips in NODES.items():
        paths.append(tmp_path / f"{server}.json")
        assert main(["rank-table", "--devices", "8", "--device-ips", ",".join(ips), "--server-id", server,
                     "--out", str(paths[-1])]) == 0
    out = tmp_path / "hccl_16p.json"
    assert main(["rank-table", "--merge", *map(str, paths), "--out", str(out)]) == 0
    table = json.loads(out.read_text())
    assert table["version"] == "1.0" and table["status"] == "completed" and table["server_count"] == "2"
    assert [s["server_id"] for s in table["server_list"]] == list(NODES)
    devices = [d for s in table["server_list"] for d in s["device"]]
    assert [d["rank_id"] for d in devices] == [str(r) for r in range(16)]
    assert [d["device_id"] for d in devices] == [str(d) for d in range(8)] * 2
    assert [d["device_ip"] for d in devices] == NODES["10.0.0.7"] + NODES["10.0.0.8"]
    assert main(["rank-table", "--merge", str(paths[0]), str(paths[0]), "--out", str(out)]) == 2  # same server


@pytest.mark.parametrize("node_rank", [0, 1])
def test_msrun_command_on_each_of_two_nodes(node_rank, tmp_path, monkeypatch):
    """`centerface train --devices 16` in a Slurm step with one task on each of 2 nodes: each node starts its 8
    workers with its own --node_rank, all pointing at node 0's scheduler; the job's threads are split 8 ways."""
    from centerface_flow.cli import main

    for key in distributed.WORKER_ENV + ("RANK_TABLE_FILE",):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLURM_NNODES", "2")
    monkeypatch.setenv("SLURM_NODEID", str(node_rank))
    monkeypatch.setenv("SLURM_JOB_NODELIST", "ascend[07-08]")
    monkeypatch.setenv("CENTERFACE_NUM_THREADS", "32")
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, env, **kw: calls.append((cmd, env)) or 0)
    assert main(["train", "--annotations", "a.json", "--images", "im", "--out-dir", str(tmp_path), "--devices", "16",
                 "--init", "scratch", "--no-progress"]) == 0
    (cmd, env), = calls
    assert cmd[0].endswith("msrun")
    opts = [c for c in cmd if c.startswith("--")][:7]
    assert opts == ["--worker_num=16", "--local_worker_num=8", "--master_port=8118",
                    f"--log_dir={tmp_path / 'msrun_logs'}", "--join=True", "--master_addr=ascend07",
                    f"--node_rank={node_rank}"]
    script = next(i for i, c in enumerate(cmd) if c.endswith("cli.py"))
    assert cmd[script + 1] == "train"
    assert env["CENTERFACE_NUM_THREADS"] == "4"


def test_msrun_layout_checks():
    assert distributed.slurm_layout({}) == (1, 0, None)
    assert distributed.slurm_layout({"SLURM_NNODES": "1", "SLURM_JOB_NODELIST": "n1"}) == (1, 0, None)
    assert distributed.first_host("ascend[07-08,11]") == "ascend07"
    assert distributed.first_host("a1,b2") == "a1"
    with pytest.raises(distributed.UserError, match="evenly"):
        distributed.msrun_command(12, ["train"], "logs", master_port=1, nodes=5, master_addr="a")
    with pytest.raises(distributed.UserError, match="node 0"):
        distributed.msrun_command(16, ["train"], "logs", nodes=2)
    single = distributed.msrun_command(8, ["train"], "logs", master_port=9000)
    assert "--local_worker_num=8" in single and not any(c.startswith("--node_rank") for c in single)


# Stand-ins for the Slurm commands the executor plugin calls: sbatch records its arguments and returns a job id;
# the status queries know no job yet (so Snakemake waits, and the test stops it once it has submitted).
FAKE_SLURM = {
    "sbatch": 'echo "$*" >> "$FAKE_SLURM_LOG"; echo $(( 1000 + $(wc -l < "$FAKE_SLURM_LOG") ))',
    "sacct": "exit 0",
    "squeue": "exit 0",
    "scancel": "exit 0",
    "sinfo": "exit 0",
    "sacctmgr": "exit 0",
    "scontrol": "exit 0",
}


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
                    reason="needs snakemake-executor-plugin-slurm (the test extra)")
def test_ascend_profile_sbatch_options(tmp_path):
    """With profiles/ascend and CENTERFACE_DEVICE=Ascend, train_model is submitted with --gres=npu:8 (train.devices),
    8 CPUs, 8 x 12 GB and the profile's partition and runtime; inference asks for one NPU."""
    workdir = tmp_path / "wf"
    workdir.mkdir()
    for name in ("Snakefile", "config.yaml", "rules", "workflow_scripts", "profiles", "report"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, workdir / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in FAKE_SLURM.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    # Every input of train_model and of one inference job exists already, so those are the first jobs submitted.
    demo = workdir / "results/demo"
    for rel in ("WIDER_train/images/0--Parade/a.jpg", "WIDER_train/label.txt", "WIDER_val/images/0--Parade/b.jpg"):
        (demo / rel).parent.mkdir(parents=True, exist_ok=True)
        (demo / rel).write_text("x")
    for rel in ("wider_face_split/wider_face_val.mat", "wider_face_split/wider_easy_val.mat",
                "wider_face_split/wider_medium_val.mat", "wider_face_split/wider_hard_val.mat",
                "../data/train.json", "../released/centerface.ckpt", "../backbone/mobilenet_v2.ckpt",
                "../rank_table/hccl_8p.json"):
        (demo / rel).parent.mkdir(parents=True, exist_ok=True)
        (demo / rel).write_text("x")
    log = tmp_path / "sbatch.log"
    log.touch()
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CENTERFACE_DEVICE": "Ascend",
           "FAKE_SLURM_LOG": str(log)}
    cmd = [SNAKEMAKE, "--profile", "profiles/ascend", "results/train/metrics.csv", "results/candidates/released.npz"]
    # its own session: Snakemake stopping must not signal pytest's process group
    with subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True) as proc:
        deadline = time.monotonic() + 120
        while len(log.read_text().splitlines()) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        proc.kill()  # it would wait for the fake jobs forever
        out = proc.communicate(timeout=60)[0]
    calls = {}
    for line in log.read_text().splitlines():
        args = shlex.split(line)
        comment = args[args.index("--comment") + 1]
        calls[comment.split("_wildcards_")[0].removeprefix("rule_")] = args
    assert set(calls) == {"train_model", "infer_candidates"}, out[-4000:]
    train, infer = calls["train_model"], calls["infer_candidates"]
    ascend = yaml.safe_load((REPO / "profiles/ascend/config.yaml").read_text())
    assert "--gres=npu:8" in train and "--cpus-per-task=8" in train
    assert train[train.index("--mem") + 1] == str(12000 * 8)
    assert train[train.index("-t") + 1] == str(ascend["set-resources"]["train_model"]["runtime"])
    assert train[train.index("-p") + 1] == ascend["default-resources"]["slurm_partition"]
    assert "--gres=npu:1" in infer and "--cpus-per-task=8" in infer
    assert infer[infer.index("--mem") + 1] == "4000"
