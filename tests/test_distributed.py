"""Multi-device support short of real devices: rank table format, hccn.conf parsing, msrun command, sharding."""
from __future__ import annotations

import json

import pytest

from centerface_flow.errors import UserError
from centerface_flow.training import distributed

HCCN = """\
address_0=192.168.100.101
netmask_0=255.255.255.0
address_1=192.168.101.101
address_2=192.168.102.101
address_3=192.168.103.101
"""


def test_hccn_conf_and_rank_table_format(tmp_path):
    conf = tmp_path / "hccn.conf"
    conf.write_text(HCCN)
    ips = distributed.read_hccn_conf(conf)
    assert ips == {"0": "192.168.100.101", "1": "192.168.101.101", "2": "192.168.102.101", "3": "192.168.103.101"}
    table = distributed.rank_table([2, 3], ips, server_id="10.1.1.1")
    # the model zoo's hccl_tools layout: strings everywhere, ranks in order of the device list
    assert table == {
        "version": "1.0",
        "server_count": "1",
        "server_list": [{
            "server_id": "10.1.1.1",
            "device": [{"device_id": "2", "device_ip": "192.168.102.101", "rank_id": "0"},
                       {"device_id": "3", "device_ip": "192.168.103.101", "rank_id": "1"}],
            "host_nic_ip": "reserve",
        }],
        "status": "completed",
    }
    with pytest.raises(UserError, match="no IP for device 7"):
        distributed.rank_table([7], ips)


def test_bad_hccn_conf(tmp_path):
    conf = tmp_path / "hccn.conf"
    conf.write_text("address_x=1.2.3.4\n")
    with pytest.raises(UserError, match="hccn.conf:1:"):
        distributed.read_hccn_conf(conf)
    with pytest.raises(UserError, match="--device-ips"):
        distributed.read_hccn_conf(tmp_path / "missing.conf")


def test_host_rank_table_of_the_workflow(tmp_path):
    conf = tmp_path / "hccn.conf"
    conf.write_text(HCCN)
    out = distributed.write_host_rank_table(tmp_path / "hccl_2p.json", 2, [], hccn_conf=conf)
    assert [d["device_id"] for d in json.loads(out.read_text())["server_list"][0]["device"]] == ["0", "1"]
    distributed.write_host_rank_table(out, 2, [3, 1], hccn_conf=conf)
    assert [d["device_id"] for d in json.loads(out.read_text())["server_list"][0]["device"]] == ["3", "1"]
    with pytest.raises(UserError, match="train.device_ids: 3 ids for train.devices = 2"):
        distributed.write_host_rank_table(out, 2, [0, 1, 2], hccn_conf=conf)


def test_rank_table_command(tmp_path):
    from centerface_flow.cli import main

    out = tmp_path / "hccl_2p.json"
    assert main(["rank-table", "--devices", "2", "--device-ips", "1.1.1.1,1.1.1.2", "--server-id", "9.9.9.9",
                 "--out", str(out)]) == 0
    table = json.loads(out.read_text())
    assert [d["device_ip"] for d in table["server_list"][0]["device"]] == ["1.1.1.1", "1.1.1.2"]
    conf = tmp_path / "hccn.conf"
    conf.write_text(HCCN)
    assert main(["rank-table", "--devices", "4", "--hccn-conf", str(conf), "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())["server_list"][0]["device"]) == 4
    assert main(["rank-table", "--devices", "2", "--device-ips", "1.1.1.1", "--out", str(out)]) == 2


def test_msrun_command_and_worker_detection(tmp_path, monkeypatch):
    cmd = distributed.msrun_command(2, ["train", "--epochs", "1"], tmp_path / "logs", master_port=9000)
    assert cmd[0].endswith("msrun")
    assert "--worker_num=2" in cmd and "--local_worker_num=2" in cmd and "--master_port=9000" in cmd
    assert cmd[-3:] == ["train", "--epochs", "1"] and cmd[-4].endswith("cli.py")
    for key in distributed.WORKER_ENV:
        monkeypatch.delenv(key, raising=False)
    assert not distributed.in_launched_worker()
    assert distributed.init_data_parallel(1) == (0, 1)
    with pytest.raises(UserError, match="msrun --worker_num=2"):
        distributed.init_data_parallel(2)
    monkeypatch.setenv("RANK_TABLE_FILE", "hccl_2p.json")
    assert not distributed.in_launched_worker()  # a rank table alone: train launches msrun --rank_table_file
    cmd = distributed.msrun_command(2, ["train"], tmp_path, rank_table_file="hccl_2p.json")
    assert "--rank_table_file=hccl_2p.json" in cmd
    monkeypatch.setenv("MS_ROLE", "MS_WORKER")
    assert distributed.in_launched_worker()


def test_ranks_partition_each_epoch():
    from centerface_flow.data.pipeline import epoch_order

    for n, world in ((10, 2), (7, 2), (9, 4)):
        shards = [epoch_order(n, seed=5, epoch=3, rank=r, world=world) for r in range(world)]
        assert len({len(s) for s in shards}) == 1  # equal steps on every rank
        seen = [i for s in shards for i in s]
        assert set(seen) == set(range(n)) and len(seen) - n < world  # only the padding repeats


@pytest.mark.slow
def test_msrun_two_cpu_workers_match_one_process(tmp_path):
    """2 msrun workers x batch 1 equal 1 process x batch 2 (augmentation that can drop faces and BN batch statistics
    off, so the batch loss is the mean of per-image losses); only rank 0 writes checkpoints."""
    import subprocess
    import sys

    import numpy as np
    from test_train import _params, make_dataset

    json_path = make_dataset(tmp_path, n=4)
    common = ["--annotations", str(json_path), "--images", str(tmp_path / "images"), "--init", "scratch",
              "--epochs", "1", "--resolution", "64", "--num-workers", "0", "--no-progress"]
    for item in ("head_width=8", "milestones=[]", "freeze_bn=true", "rand_crop=false", "anchor_sampling=false"):
        common += ["--set", item]
    cli = [sys.executable, "-m", "centerface_flow.cli", "train", *common]
    dp = subprocess.run([*cli, "--out-dir", str(tmp_path / "dp"), "--devices", "2", "--batch-size", "1"],
                        capture_output=True, text=True, check=False, timeout=900)
    assert dp.returncode == 0, dp.stderr[-3000:]
    logs = tmp_path / "dp" / "msrun_logs"
    assert "rank 0 of 2" in (logs / "worker_0.log").read_text()
    assert "rank 1 of 2" in (logs / "worker_1.log").read_text()
    assert "epoch 1/1 done" in (logs / "worker_0.log").read_text()
    assert "epoch 1/1 done" not in (logs / "worker_1.log").read_text()  # rank 1 writes nothing
    single = subprocess.run([*cli, "--out-dir", str(tmp_path / "one"), "--batch-size", "2"],
                            capture_output=True, text=True, check=False, timeout=900)
    assert single.returncode == 0, single.stderr[-3000:]
    a, b = _params(tmp_path / "dp" / "epoch_1.ckpt"), _params(tmp_path / "one" / "epoch_1.ckpt")
    # Not bit-identical: the all-reduce sums in another order, and Adam's first steps (update ~ lr * g / |g|)
    # magnify float noise in near-zero gradients, so a handful of the ~1.8 M weights move by up to ~5 % of a step
    # (measured: 2 elements > 1e-4, 99.9th percentile 7e-7, median 0). Without the all-reduce each rank would follow
    # its own images' gradient signs and most weights would differ by ~lr = 4e-3.
    keys = [k for k in a if k.startswith(("base.", "dla_up.", "hm_head", "wh_head", "off_head", "kps_head"))]
    diff = np.concatenate([np.abs(a[k] - b[k]).ravel() for k in keys])
    assert (diff > 1e-4).mean() < 1e-4 and np.quantile(diff, 0.999) < 1e-5, (diff.max(), np.quantile(diff, 0.999))


def test_workers_get_the_launchers_settings_through_a_config_file(tmp_path, monkeypatch):
    """msrun's workers read the settings the launcher resolved (command-line overrides included) from one file."""
    import subprocess

    import yaml

    from centerface_flow.cli import main

    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, **kw: calls.append(cmd) or 0)
    for var in ("RANK_ID", "RANK_SIZE", "MS_WORKER_NUM", "MS_ROLE", "SLURM_NNODES", "SLURM_JOB_NUM_NODES"):
        monkeypatch.delenv(var, raising=False)
    state = tmp_path / "s"
    assert main(["train", "--annotations", "a.json", "--images", "im", "--out-dir", str(tmp_path / "o"),
                 "--init", "scratch", "--devices", "2", "--set", "lr=0.1", "--state-dir", str(state),
                 "--no-progress"]) == 0
    (cmd,) = calls
    worker = cmd[cmd.index("train"):]
    assert worker[worker.index("--config") + 1] == str(state / "train_config.yaml")
    assert {"--state-dir", str(state), "--no-progress", "--annotations", "a.json"} <= set(worker)
    written = yaml.safe_load((state / "train_config.yaml").read_text())
    assert written["lr"] == 0.1 and written["devices"] == 2 and written["init"] == "scratch"
