"""`pymacvlan status` for people: the report as aligned tables, readable in 100 columns.

Pure: a report in, text out. Sections: where it was read from, then networks, endpoints and
pools always, and the rest (allocations, stale allocations, owned links, cluster blocks, LAN
conflicts, claims, DHCP leases, problems) when they hold something. Ids are shortened to 12
characters as Docker shows them; `--json` has them whole.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from plugin.admin.report import (
    EndpointStatus,
    NetworkStatus,
    PoolStatus,
    StatusReport,
)

SHORT_ID = 12
NAME_UNKNOWN = "name unknown"  # Docker could not be asked
NOT_IN_DOCKER = "not in Docker"  # Docker was asked and has no such network
MAX_CELL = 40  # free text (names, descriptions) is cut beyond this in a table
WIDTH = 100  # notes under a table are wrapped to this
GAP = "  "
# The daemon judges stale allocations without Docker (it never asks it): what is certain then
# is listed, what only Docker could settle is counted (docs/ipam.md, "Stale allocations").
STALE_TITLE = "STALE ALLOCATIONS (certain without Docker)"
GC_HINT = "free them with `pymacvlan gc` (add --dry-run to see first)"


def render(report: StatusReport, *, origin: str, now: float) -> str:
    """The whole report; `origin` says where it was read from (first line)."""
    lines = [origin]
    lines += _header(report)
    networks = {n.id: n for n in report.networks}
    sections: list[tuple[str, list[str]]] = [
        ("NETWORKS", _networks(report)),
        ("ENDPOINTS", _endpoints(report, networks)),
        ("POOLS", _pools(report.pools)),
        ("ALLOCATIONS", _allocations(report, now)),
        (STALE_TITLE, _stale(report, now)),
        ("OWNED LINKS", _owned_links(report)),
        ("CLUSTER BLOCKS", _cluster(report, now)),
        ("FOUND IN USE ON THE LAN (probing)", _lan_conflicts(report, now)),
        ("CLAIMED BY OTHER DEVICES", _claims(report, now)),
        ("DHCP LEASES", _dhcp(report, now)),
    ]
    always = {"NETWORKS", "ENDPOINTS", "POOLS"}
    for title, body in sections:
        if body or title in always:
            lines += ["", title, *(body or ["(none)"])]
    return "\n".join(lines) + "\n"


def _header(report: StatusReport) -> list[str]:
    lines = [f"state: {report.health}, {report.state_dir}, node {report.node_name or '?'}"]
    if report.narrowed_to is not None:
        lines.append(f"narrowed to network {', '.join(i[:SHORT_ID] for i in report.narrowed_to)}")
    if report.names_problem is not None:
        lines.append(f"names: {NAME_UNKNOWN}: {report.names_problem}")
    lines += [f"problem: {p}" for p in report.problems]
    return lines


# --------------------------------------------------------------------------------- sections


def _networks(report: StatusReport) -> list[str]:
    rows: list[list[str]] = []
    notes: list[str] = []
    for n in report.networks:
        subnets = [(s.subnet, s.gateway or "-") for s in n.subnets] or [("-", "-")]
        rows.append(
            [
                n.id[:SHORT_ID],
                _network_name(report, n),
                f"{n.kind} {n.mode}",
                n.parent or "(none)",
                str(n.vlan) if n.vlan is not None else "-",
                *subnets[0],
            ]
        )
        rows += [["", "", "", "", "", *extra] for extra in subnets[1:]]
        details = []
        if n.link != n.parent:
            owned = " (made by pymacvlan)" if n.link in n.owned_links else ""
            details.append(f"containers on {n.link}{owned}")
        if n.mtu:
            details.append(f"mtu {n.mtu}")
        if n.internal:
            details.append("internal")
        if n.shim is not None:
            details.append(f"host shim {n.shim.link} {n.shim.address or '(no address)'}")
        if details:
            notes += note(f"{n.id[:SHORT_ID]}: " + ", ".join(details))
    headers = ["NETWORK", "NAME", "DRIVER", "PARENT", "VLAN", "SUBNET", "GATEWAY"]
    return table(headers, rows) + notes


def _endpoints(report: StatusReport, networks: dict[str, NetworkStatus]) -> list[str]:
    rows = []
    for e in report.endpoints:
        network = networks.get(e.network_id)
        shown_network = (
            network.name if network is not None and network.name else e.network_id[:SHORT_ID]
        )
        addresses = [a for a in (e.ipv4, e.ipv6) if a] or ["-"]
        rows.append(
            [
                e.id[:SHORT_ID],
                shown_network,
                _container(report, e),
                addresses[0],
                e.mac or "-",
                e.link,
            ]
        )
        rows += [["", "", "", extra, "", ""] for extra in addresses[1:]]
    return table(["ENDPOINT", "NETWORK", "CONTAINER", "ADDRESS", "MAC", "LINK"], rows)


def _pools(pools: Sequence[PoolStatus]) -> list[str]:
    rows: list[list[str]] = []
    notes: list[str] = []
    for p in pools:
        c = p.counts
        this_host = ", ".join(p.host_ranges) or "(none)"
        rows.append(
            [
                p.subnet,
                p.lan,
                _cut(this_host),
                str(c.size),
                str(c.used),
                str(c.free),
                str(c.quarantined),
                str(c.lan_in_use),
            ]
        )
        details = [f"{k}={v}" for k, v in p.options.items()]
        if p.ip_range:
            details.insert(0, f"ip-range {p.ip_range}")
        if p.address_space != "local":
            details.insert(0, f"address space {p.address_space}")
        if p.problem:
            details.append(f"PROBLEM: {p.problem}")
        if details:
            notes += note(f"{p.subnet} ({p.lan}): " + "; ".join(details))
    lines = table(
        ["SUBNET", "LAN", "THIS HOST", "SIZE", "USED", "FREE", "RESTING", "ON LAN"],
        rows,
        right=frozenset({3, 4, 5, 6, 7}),
    )
    return lines + notes


def _allocations(report: StatusReport, now: float) -> list[str]:
    rows = [
        [a.address, a.kind, _cut(a.endpoint or "-"), a.mac or "-", _age(now, a.allocated_at)]
        for a in report.allocations
    ]
    return table(["ADDRESS", "KIND", "ENDPOINT NAME", "MAC", "HELD FOR"], rows)


def _stale(report: StatusReport, now: float) -> list[str]:
    if not report.stale_allocations:
        return []
    rows = [
        [s.address, s.subnet, s.kind, _cut(s.endpoint or "-"), _age(now, s.allocated_at)]
        for s in report.stale_allocations
        if s.verdict == "stale"
    ]
    lines = table(["ADDRESS", "SUBNET", "KIND", "ENDPOINT NAME", "HELD FOR"], rows)
    suspect = [s for s in report.stale_allocations if s.verdict == "suspect"]
    if suspect:
        lines += note(
            f"{len(suspect)} suspect (perhaps stale, not certain without Docker): "
            f"{suspect[0].reason}"
        )
    return [*lines, GC_HINT]


def _owned_links(report: StatusReport) -> list[str]:
    rows = [
        [
            link.name,
            link.kind,
            link.base or "-",
            str(link.vlan) if link.vlan is not None else "-",
            ", ".join(i[:SHORT_ID] for i in link.networks) or "(no network)",
        ]
        for link in report.owned_links
    ]
    return table(["LINK", "KIND", "BASE", "VLAN", "USED BY"], rows)


def _cluster(report: StatusReport, now: float) -> list[str]:
    cluster = report.cluster
    if cluster is None:
        return []
    rows = [
        [b.block, b.pool, b.lan, b.address_space, _age(now, b.claimed_at)] for b in cluster.blocks
    ]
    head = f"node {cluster.node or '?'}, instance {cluster.instance or '?'}"
    if cluster.etcd:
        head += f", etcd {cluster.etcd}"
    return [head, *table(["BLOCK", "POOL", "LAN", "SPACE", "HELD FOR"], rows)]


def _lan_conflicts(report: StatusReport, now: float) -> list[str]:
    rows = [[c.address, c.mac, c.subnet, c.lan, _age(now, c.seen_at)] for c in report.lan_conflicts]
    return table(["ADDRESS", "ANSWERED FROM MAC", "SUBNET", "LAN", "SEEN"], rows)


def _claims(report: StatusReport, now: float) -> list[str]:
    if not report.claims:
        return []
    rows = [
        [c.address, c.foreign_mac, c.expected_mac, c.link, _age(now, c.seen_at)]
        for c in report.claims
    ]
    lines = table(["ADDRESS", "CLAIMED BY MAC", "CONTAINER MAC", "LINK", "SEEN"], rows)
    if report.claims_seen:
        lines.append(f"{report.claims_seen} claiming frames since the daemon started")
    return lines


def _dhcp(report: StatusReport, now: float) -> list[str]:
    rows = [
        [
            f"{d.address}/{d.prefixlen}",
            d.state,
            d.mac,
            d.server_id,
            _remaining(now, d.expires_at),
            _cut(d.problem or "-"),
        ]
        for d in report.dhcp_leases
    ]
    return table(["ADDRESS", "STATE", "MAC", "SERVER", "EXPIRES IN", "PROBLEM"], rows)


# ----------------------------------------------------------------------------------- cells


def _network_name(report: StatusReport, network: NetworkStatus) -> str:
    if network.name:
        return _cut(network.name)
    return NAME_UNKNOWN if report.names_problem is not None else NOT_IN_DOCKER


def _container(report: StatusReport, endpoint: EndpointStatus) -> str:
    if endpoint.container:
        return _cut(endpoint.container)
    return NAME_UNKNOWN if report.names_problem is not None else "-"


def note(text: str) -> list[str]:
    """A line under a table, wrapped to `WIDTH` (continuation lines indented)."""
    return textwrap.wrap(
        text, WIDTH, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False
    )


def _cut(text: str, width: int = MAX_CELL) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _age(now: float, then: float) -> str:
    return duration(max(0.0, now - then))


def _remaining(now: float, until: float) -> str:
    left = until - now
    return duration(left) if left >= 0 else f"expired {duration(-left)} ago"


def duration(seconds: float) -> str:
    """3s, 5m, 2h10m, 4d3h: two units at most."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        hours, minutes = divmod(s // 60, 60)
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(s // 3600, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()
) -> list[str]:
    """Aligned columns, two spaces apart; `right`: the columns aligned right (numbers). No
    rows: no table."""
    if not rows:
        return []
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return GAP.join(parts).rstrip()

    return [line(headers), *(line(r) for r in rows)]
