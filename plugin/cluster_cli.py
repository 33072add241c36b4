"""``pymacvlan cluster status | reclaim``: look at and repair cluster mode's blocks in etcd.

These commands talk to etcd directly (the same ``--etcd-*`` flags and ``PYMACVLAN_ETCD_*``
variables as the daemon, TLS and etcd user included), not to a daemon, so they work from any
host and about hosts that are gone. What they read and do is ``ipam.cluster.admin``; this
module only parses and prints.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

from ipam.cluster.config import ClusterConfig
from ipam.errors import ClusterUnavailable, EtcdAccessDenied, IpamError
from plugin import settings

if TYPE_CHECKING:  # imported when a command runs: `pymacvlan --help` stays fast
    from ipam.cluster.admin import ClusterStatus, ReclaimResult
    from ipam.cluster.claims import ClaimedBlock


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = sub.add_parser("cluster", help="cluster mode: blocks per node, reclaim a gone node")
    commands = cluster.add_subparsers(dest="cluster_command", required=True)
    status = commands.add_parser("status", help="blocks claimed per pool and node, free blocks")
    settings.add_etcd_arguments(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    take = commands.add_parser(
        "reclaim",
        help="give back every block of a node that is gone (refused while it runs)",
    )
    settings.add_etcd_arguments(take)
    take.add_argument("--node", required=True, help="the node name whose blocks to free")
    take.add_argument(
        "--instance",
        help="only the blocks of this instance of the node (an earlier state directory of it)",
    )
    take.add_argument(
        "--force",
        action="store_true",
        help="even though the node is registered as running (only for a node gone for good)",
    )
    take.add_argument(
        "--dry-run", action="store_true", help="only show the blocks that would be freed"
    )
    take.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    try:
        config = settings.cluster_config(
            args.etcd_endpoints,
            args.etcd_prefix,
            args.etcd_timeout,
            security=settings.EtcdSecurity.of(args),
        )
    except settings.SettingsError as exc:
        print(f"pymacvlan: {exc}", file=sys.stderr)
        return 2
    if config is None:
        print(
            "pymacvlan: cluster mode is off: give --etcd-endpoints (or PYMACVLAN_ETCD_ENDPOINTS)",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(_run(args, config))
    except EtcdAccessDenied as exc:
        print(f"pymacvlan: {exc}", file=sys.stderr)
        return 1
    except ClusterUnavailable as exc:
        print(
            f"pymacvlan: the etcd cluster ({config.describe()}) cannot be reached: {exc}",
            file=sys.stderr,
        )
        return 1
    except IpamError as exc:
        print(f"pymacvlan: {exc}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace, config: ClusterConfig) -> int:
    from ipam.cluster.admin import read_status, reclaim
    from ipam.cluster.etcd import EtcdClient
    from ipam.cluster.layout import Layout

    kv = EtcdClient.for_config(config)
    layout = Layout(config.prefix)
    try:
        if args.cluster_command == "status":
            status = await read_status(kv, layout)
            if args.json:
                print(json.dumps(_status_json(status), indent=2))
            else:
                print("\n".join(_status_lines(status)))
            return 0
        result = await reclaim(
            kv,
            layout,
            args.node,
            instance=args.instance,
            force=args.force,
            dry_run=args.dry_run,
        )
        if args.json:
            print(json.dumps(_reclaim_json(result, args.dry_run), indent=2))
        else:
            print("\n".join(_reclaim_lines(result, args.dry_run)))
        if result.refused is not None:
            print(f"pymacvlan: {result.refused}", file=sys.stderr)
            return 1
        return 0
    finally:
        await kv.close()


# ------------------------------------------------------------------ rendering


def _block_json(claimed: ClaimedBlock) -> dict[str, Any]:
    return {
        "block": str(claimed.block),
        "node": claimed.owner.node,
        "instance": claimed.owner.instance,
        "claimed_at": claimed.owner.claimed_at,
    }


def _status_json(status: ClusterStatus) -> dict[str, Any]:
    return {
        "etcd": status.etcd,
        "prefix": status.prefix,
        "nodes": {
            node: {
                "running": node in status.running,
                "instance": status.running[node].instance if node in status.running else None,
                "blocks": status.blocks_per_node.get(node, 0),
                "blocks_per_instance": status.instances.get(node, {}),
            }
            for node in status.nodes
        },
        "pools": [
            {
                "address_space": pool.scope.address_space,
                "lan": pool.scope.lan,
                "family": pool.scope.family.label,
                "pool": pool.pool,
                "block_size": pool.block_prefixlen,
                "blocks_total": pool.total_blocks,
                "blocks_free": pool.free_blocks,
                "blocks": [_block_json(c) for c in pool.blocks],
            }
            for pool in status.pools
        ],
    }


def _status_lines(status: ClusterStatus) -> list[str]:
    from ipam.cluster.layout import describe_block

    lines = [f"etcd: {status.etcd}, prefix {status.prefix}", "", "nodes:"]
    if not status.nodes:
        lines.append("  none registered, no blocks claimed")
    for node in status.nodes:
        state = "running" if node in status.running else "not running"
        count = status.blocks_per_node.get(node, 0)
        line = f"  {node:<24} {state:<12} {count} block{'s' if count != 1 else ''}"
        line += _instances_note(status, node)
        lines.append(line)
    for pool in status.pools:
        scope = pool.scope
        head = (
            f"pool {pool.pool} on LAN {scope.lan} ({scope.address_space}, "
            f"{scope.family.label}): {len(pool.blocks)} blocks, "
            f"{pool.claimed_addresses} addresses claimed"
        )
        if pool.free_blocks is not None and pool.block_prefixlen is not None:
            head += (
                f"; {pool.free_blocks} of {pool.total_blocks} /{pool.block_prefixlen} blocks free"
            )
        lines += ["", head]
        per_node: dict[str, list[str]] = {}
        for claimed in pool.blocks:
            per_node.setdefault(claimed.owner.node, []).append(describe_block(claimed.block))
        for node, blocks in sorted(per_node.items()):
            lines.append(f"  {node:<24} {' '.join(blocks)}")
    return lines


def _instances_note(status: ClusterStatus, node: str) -> str:
    """Which instances of `node` hold blocks, when that is not simply the running one."""
    instances = status.instances.get(node, {})
    running = status.running.get(node)
    current = running.instance if running is not None else None
    if len(instances) <= 1 and (current is None or set(instances) <= {current}):
        return ""
    parts = [
        f"{instance} ({count}{', running' if instance == current else ''})"
        for instance, count in sorted(instances.items())
    ]
    return "; blocks of instances " + ", ".join(parts)


def _reclaim_json(result: ReclaimResult, dry_run: bool) -> dict[str, Any]:
    return {
        "node": result.node,
        "running": result.running is not None,
        "dry_run": dry_run,
        "refused": result.refused,
        "blocks": [_block_json(c) for c in result.blocks],
        "reclaimed": result.reclaimed,
    }


def _reclaim_lines(result: ReclaimResult, dry_run: bool) -> list[str]:
    from ipam.cluster.layout import describe_block

    blocks = " ".join(describe_block(c.block) for c in result.blocks)
    if not result.blocks:
        return [f'node "{result.node}" holds no blocks']
    if result.refused is not None:
        return [f'node "{result.node}" holds {len(result.blocks)} blocks: {blocks}']
    if dry_run:
        return [f'would give back {len(result.blocks)} blocks of node "{result.node}": {blocks}']
    lines = [
        f'gave back {result.reclaimed} blocks of node "{result.node}": {blocks}; other hosts '
        "may claim them now"
    ]
    skipped = len(result.blocks) - result.reclaimed
    if skipped:
        lines.append(f"{skipped} blocks changed while this ran and were left alone; run it again")
    return lines
