"""``centerface rank-table``: write an HCCL rank table (model zoo ``hccl_tools`` format) for Ascend training."""
from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers) -> None:
    parser = subparsers.add_parser("rank-table", help="HCCL rank table JSON for multi-device Ascend training",
                                   description=__doc__)
    parser.add_argument("--devices", type=int, help="number of devices (ranks) on this host")
    parser.add_argument("--device-ids", default="", help="comma-separated device ids; default 0..devices-1")
    parser.add_argument("--device-ips", default="",
                        help="comma-separated device IPs in device-id order; default: read /etc/hccn.conf")
    parser.add_argument("--hccn-conf", default="/etc/hccn.conf", help="Ascend hccn.conf (address_<id>=<ip>)")
    parser.add_argument("--server-id", default=None, help="host IP; default: resolved from the host name")
    parser.add_argument("--merge", nargs="+", metavar="TABLE",
                        help="instead: join these per-node tables into one for all nodes (ranks numbered in order)")
    parser.add_argument("--out", required=True, help="output JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from centerface_flow.errors import UserError
    from centerface_flow.training import distributed

    if args.merge:
        tables = []
        for path in args.merge:
            try:
                with open(path, encoding="utf-8") as handle:
                    tables.append(json.load(handle))
            except (OSError, ValueError) as exc:
                raise UserError(f"{path}: not a readable rank table ({exc})") from None
        distributed.write_rank_table(args.out, distributed.merge_rank_tables(tables))
        return 0
    if not args.devices:
        raise UserError("rank-table: give --devices N (or --merge TABLE...)")
    try:
        ids = [int(x) for x in args.device_ids.split(",") if x.strip()] or list(range(args.devices))
    except ValueError:
        raise UserError(f"--device-ids {args.device_ids!r}: expected comma-separated integers") from None
    if len(ids) != args.devices:
        raise UserError(f"--device-ids lists {len(ids)} devices but --devices is {args.devices}")
    if args.device_ips:
        ips = [x.strip() for x in args.device_ips.split(",") if x.strip()]
        if len(ips) != len(ids):
            raise UserError(f"--device-ips lists {len(ips)} addresses for {len(ids)} devices")
        device_ips = {str(d): ip for d, ip in zip(ids, ips)}
    else:
        device_ips = distributed.read_hccn_conf(args.hccn_conf)
    distributed.write_rank_table(args.out, distributed.rank_table(ids, device_ips, args.server_id))
    return 0
