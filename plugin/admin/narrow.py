"""`--network`: narrow a status report to some networks and what belongs to them.

Pure, and used on both sides: the daemon's route (`?network=ID-or-prefix`: it knows networks by
id only) and the command line (which turns a name into an id through Docker first, and narrows a
report read offline itself). A network's pools are the pools on its subnets; its allocations
(stale ones too), LAN conflicts, DHCP leases and cluster blocks are those of these pools and
subnets; its claims are those of its endpoints' addresses.
"""

from __future__ import annotations

from collections.abc import Collection

from plugin.admin.report import StatusReport

SHOWN_CHARACTERS = 80  # of a network given by the caller, in a message


class NoSuchNetwork(Exception):
    """The network asked for is none of the report's (or several of them)."""


def shown(text: str) -> str:
    return repr(text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 3] + "...")


def match_network(report: StatusReport, wanted: str) -> str:
    """The id of the network `wanted` names: its id, or a prefix of one only (as Docker reads
    ids). Raises `NoSuchNetwork`."""
    ids = [n.id for n in report.networks]
    if wanted in ids:
        return wanted
    found = [i for i in ids if wanted and i.startswith(wanted)]
    if len(found) == 1:
        return found[0]
    if found:
        listed = ", ".join(i[:12] for i in found[:5])
        raise NoSuchNetwork(
            f"network {shown(wanted)} is ambiguous: it begins the ids of {len(found)} networks "
            f"({listed}); give more of the id"
        )
    raise NoSuchNetwork(
        f"pymacvlan holds no network {shown(wanted)} on this host (pymacvlan knows networks by "
        "id; `pymacvlan status --network NAME` asks Docker for the id of a name)"
    )


def narrow(report: StatusReport, network_ids: Collection[str]) -> StatusReport:
    ids = set(network_ids)
    networks = [n for n in report.networks if n.id in ids]
    subnets = {s.subnet for n in networks for s in n.subnets}
    endpoints = [e for e in report.endpoints if e.network_id in ids]
    addresses = {
        cidr.split("/")[0] for e in endpoints for cidr in (e.ipv4, e.ipv6) if cidr is not None
    }
    pools = [p for p in report.pools if p.subnet in subnets]
    pool_ids = {p.pool_id for p in pools}
    cluster = report.cluster
    if cluster is not None:
        cluster = cluster.model_copy(
            update={"blocks": [b for b in cluster.blocks if b.pool in subnets]}
        )
    return report.model_copy(
        update={
            "networks": networks,
            "endpoints": endpoints,
            "owned_links": [link for link in report.owned_links if ids.intersection(link.networks)],
            "pools": pools,
            "allocations": [a for a in report.allocations if a.pool_id in pool_ids],
            "stale_allocations": [s for s in report.stale_allocations if s.pool_id in pool_ids],
            "cluster": cluster,
            "lan_conflicts": [c for c in report.lan_conflicts if c.subnet in subnets],
            "claims": None
            if report.claims is None
            else [c for c in report.claims if c.address in addresses],
            "dhcp_leases": [d for d in report.dhcp_leases if d.pool_id in pool_ids],
            "narrowed_to": sorted(ids),
        }
    )
