"""More than one device: HCCL rank tables, msrun launch, data-parallel initialisation.

* :func:`rank_table` builds the model zoo's ``hccl_tools`` rank table (``version`` "1.0", ``server_count``,
  ``server_list[{server_id, device[{device_id, device_ip, rank_id}], host_nic_ip}]``, ``status`` "completed"), from
  ``/etc/hccn.conf`` (``address_<id>=<ip>`` lines) or from given device IPs. Ascend uses it via
  ``RANK_TABLE_FILE`` (or ``msrun --rank_table_file``).
* :func:`msrun_command` is the ``msrun`` command line that starts ``n`` worker processes of a ``centerface``
  sub-command on this host (MindSpore's own launcher; it sets each worker's rank through its scheduler).
* :func:`init_data_parallel` is called by every worker: with more than one device it initialises
  ``mindspore.communication`` (HCCL on Ascend, NCCL on GPU, MindSpore's own "mccl" collectives on CPU) and sets
  data-parallel mode; each rank then reads its own shard of every epoch and gradients are all-reduced (mean).
  Only rank 0 writes checkpoints and metrics (``train.train``).
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import sys
from pathlib import Path

from centerface_flow.errors import UserError
from centerface_flow.io import atomic_write_text

__all__ = ["SLURM_MASTER_PORT", "WORKER_ENV", "first_host", "free_port", "in_launched_worker", "init_data_parallel",
           "merge_rank_tables", "msrun_command", "msrun_env", "quote", "rank_table", "read_hccn_conf",
           "slurm_layout", "write_host_rank_table", "write_rank_table"]

log = logging.getLogger(__name__)

#: Environment variables that show a process is one worker of a launched job: msrun sets ``MS_ROLE`` (and
#: ``RANK_ID``); the model zoo's rank-table scripts set ``RANK_ID`` per process. ``RANK_TABLE_FILE`` alone does not
#: count: with it, ``centerface train`` starts ``msrun --rank_table_file``.
WORKER_ENV = ("MS_ROLE", "RANK_ID")


def read_hccn_conf(path: str | os.PathLike = "/etc/hccn.conf") -> dict[str, str]:
    """``{device_id: device_ip}`` from the ``address_<id>=<ip>`` lines of an Ascend ``hccn.conf``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: pass the device IPs with --device-ips instead (this host has no "
                        "Ascend driver configuration)")
    ips = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if line.startswith("address_"):
            key, sep, value = line.partition("=")
            device = key[len("address_"):]
            if not sep or not device.isdigit() or not value.strip():
                raise UserError(f"{path}:{lineno}: expected 'address_<id>=<ip>', got {line!r}")
            ips[device] = value.strip()
    if not ips:
        raise UserError(f"{path}: no 'address_<id>=<ip>' lines")
    return ips


def rank_table(device_ids: list[int], device_ips: dict[str, str], server_id: str | None = None) -> dict:
    """The ``hccl_tools`` rank table for ``device_ids`` (rank ``k`` = ``device_ids[k]``) on one server."""
    if not device_ids:
        raise UserError("rank table: no device ids")
    if len(set(device_ids)) != len(device_ids):
        raise UserError(f"rank table: repeated device ids {device_ids}")
    server_id = server_id or socket.gethostbyname(socket.gethostname())
    devices = []
    for rank, device in enumerate(device_ids):
        ip = device_ips.get(str(device))
        if ip is None:
            raise UserError(f"rank table: no IP for device {device} (known: {sorted(device_ips)})")
        devices.append({"device_id": str(device), "device_ip": ip, "rank_id": str(rank)})
    return {"version": "1.0", "server_count": "1",
            "server_list": [{"server_id": server_id, "device": devices, "host_nic_ip": "reserve"}],
            "status": "completed"}


def write_rank_table(path: str | os.PathLike, table: dict) -> Path:
    """Write the table as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(table, indent=4) + "\n")
    return Path(path)


def write_host_rank_table(path: str | os.PathLike, devices: int, device_ids: list[int] | None = None,
                          hccn_conf: str | os.PathLike = "/etc/hccn.conf") -> Path:
    """The ``rank_table`` rule: the rank table of this host's ``device_ids`` (default ``0..devices-1``), their IPs
    read from ``hccn_conf``, written to ``path``."""
    ids = list(device_ids or range(devices))
    if len(ids) != devices:
        raise UserError(f"config.yaml train.device_ids: {len(ids)} ids for train.devices = {devices}")
    return write_rank_table(path, rank_table(ids, read_hccn_conf(hccn_conf)))


def free_port() -> int:
    """A TCP port that is free on this host right now (for msrun's scheduler)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def msrun_command(n: int, argv: list[str], log_dir: str | os.PathLike, master_port: int | None = None,
                  rank_table_file: str | None = None, nodes: int = 1, node_rank: int = 0,
                  master_addr: str | None = None) -> list[str]:
    """``msrun`` running ``centerface <argv>`` as ``n`` workers in all, ``n / nodes`` on this host (joined; logs in
    ``log_dir``). On several nodes the same command runs once per node, each with its ``node_rank``; every node
    reaches the scheduler on ``master_addr`` (node 0), so ``master_port`` must then be given (the same everywhere).

    ``master_port`` defaults to a free port on one node."""
    if nodes < 1 or n % nodes:
        raise UserError(f"{n} workers cannot be split evenly over {nodes} nodes")
    if nodes > 1 and not (master_addr and master_port):
        raise UserError("msrun on several nodes needs the address and port of node 0 (master_addr, master_port)")
    if not 0 <= node_rank < nodes:
        raise UserError(f"node rank {node_rank} outside 0..{nodes - 1}")
    master_port = master_port or free_port()
    msrun = Path(sys.executable).with_name("msrun")
    cmd = [str(msrun) if msrun.exists() else "msrun", f"--worker_num={n}", f"--local_worker_num={n // nodes}",
           f"--master_port={master_port}", f"--log_dir={log_dir}", "--join=True"]
    if nodes > 1:
        cmd += [f"--master_addr={master_addr}", f"--node_rank={node_rank}"]
    if rank_table_file:
        cmd.append(f"--rank_table_file={rank_table_file}")
    return [*cmd, _cli_script(), *argv]


#: msrun's scheduler port on node 0 when a Slurm job spans several nodes (each node must use the same one).
SLURM_MASTER_PORT = 8118


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list: ``"ascend[07-08,11]"`` -> ``"ascend07"``, ``"a1,b2"`` -> ``"a1"``."""
    head = nodelist.split(",")[0] if "[" not in nodelist.split(",")[0] else nodelist[:nodelist.index("]") + 1]
    prefix, bracket, rest = head.partition("[")
    if not bracket:
        return head.strip()
    return prefix + rest.split(",")[0].split("-")[0].rstrip("]")


def slurm_layout(environ: dict | None = None) -> tuple[int, int, str | None]:
    """``(nodes, node_rank, master_addr)`` of this process inside a Slurm job step (one task per node), from
    ``SLURM_NNODES``, ``SLURM_NODEID`` and ``SLURM_JOB_NODELIST``; ``(1, 0, None)`` outside Slurm."""
    env = os.environ if environ is None else environ
    nodes = int(env.get("SLURM_NNODES") or env.get("SLURM_JOB_NUM_NODES") or 1)
    if nodes <= 1:
        return 1, 0, None
    return nodes, int(env.get("SLURM_NODEID", 0)), first_host(env["SLURM_JOB_NODELIST"])


def merge_rank_tables(tables: list[dict]) -> dict:
    """One rank table for several servers from each server's own (as ``rank_table`` writes them on each node):
    ranks are renumbered across servers in the given order (server ``k``'s devices follow server ``k-1``'s)."""
    servers, rank = [], 0
    for table in tables:
        for server in table["server_list"]:
            devices = []
            for device in server["device"]:
                devices.append({**device, "rank_id": str(rank)})
                rank += 1
            servers.append({**server, "device": devices})
    ids = [s["server_id"] for s in servers]
    if len(set(ids)) != len(ids):
        raise UserError(f"rank tables: server {sorted({i for i in ids if ids.count(i) > 1})} appears twice")
    return {"version": "1.0", "server_count": str(len(servers)), "server_list": servers, "status": "completed"}


def msrun_env(environ: dict | None = None, workers: int = 1) -> dict:
    """Environment for msrun: it starts workers as ``python <script>``, the first ``python`` on ``PATH``, so put
    this interpreter's directory (the virtualenv's ``bin``) first; and the ``workers`` processes on this host share
    the caller's CPU threads (``CENTERFACE_NUM_THREADS``, at least one each) instead of each taking them all."""
    from centerface_flow.runtime import THREADS_ENV, kernel_threads

    env = dict(os.environ if environ is None else environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env[THREADS_ENV] = str(max(1, kernel_threads(env) // max(1, workers)))
    return env


def _cli_script() -> str:
    """Path of a script msrun can start (msrun wants a file, not ``-m``)."""
    return str(Path(__file__).resolve().parents[1] / "cli.py")


def in_launched_worker() -> bool:
    """True inside a process started by msrun or a rank-table script."""
    return any(os.environ.get(k) for k in WORKER_ENV)


def init_data_parallel(devices: int) -> tuple[int, int]:
    """Initialise collectives when ``devices > 1``; return ``(rank, world)``.

    Outside a launched worker with ``devices > 1`` this is a ``UserError`` that shows the msrun command.
    """
    if devices <= 1:
        return 0, 1
    if not in_launched_worker():
        raise UserError(f"devices={devices} needs one process per device: start with `msrun --worker_num={devices} "
                        f"--local_worker_num={devices} ...` (`centerface train` does this itself), or on Ascend "
                        "with RANK_TABLE_FILE set")
    import mindspore as ms
    from mindspore.communication import get_group_size, get_rank, init

    init()
    rank, world = get_rank(), get_group_size()
    if world != devices:
        raise UserError(f"devices={devices} but the launcher started {world} workers")
    ms.reset_auto_parallel_context()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                 device_num=world)
    log.info("data parallel: rank %d of %d", rank, world)
    return rank, world


def quote(cmd: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)
