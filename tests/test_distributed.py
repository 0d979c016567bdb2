"""Multi-device support short of real devices: rank table format, hccn.conf parsing, msrun command, sharding."""
from __future__ import annotations

import json

import pytest

from centerface_flow import distributed
from centerface_flow.errors import UserError

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
    monkeypatch.setenv("MS_WORKER_NUM", "2")
    assert distributed.in_launched_worker()


def test_ranks_partition_each_epoch():
    from centerface_flow.data.pipeline import epoch_order

    for n, world in ((10, 2), (7, 2), (9, 4)):
        shards = [epoch_order(n, seed=5, epoch=3, rank=r, world=world) for r in range(world)]
        assert len({len(s) for s in shards}) == 1  # equal steps on every rank
        seen = [i for s in shards for i in s]
        assert set(seen) == set(range(n)) and len(seen) - n < world  # only the padding repeats
