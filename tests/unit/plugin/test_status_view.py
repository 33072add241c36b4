"""`pymacvlan status` for people and its `--network` filter, on reports made by hand."""

from __future__ import annotations

import itertools

import pytest

from plugin.admin.narrow import NoSuchNetwork, match_network, narrow
from plugin.admin.report import (
    AllocationStatus,
    ClaimStatus,
    ClusterBlockStatus,
    ClusterStatus,
    DhcpLeaseStatus,
    EndpointStatus,
    LanConflictStatus,
    NetworkStatus,
    OwnedLinkStatus,
    PoolCounts,
    PoolStatus,
    StaleAllocationStatus,
    StatusReport,
    SubnetStatus,
)
from plugin.admin.status_view import duration, render, table

NOW = 1_800_000_000.0
NET_A = "aaaa1111" * 8
NET_B = "aaaa2222" * 8
EP_A = "e1" * 32
EP_B = "e2" * 32


def network(network_id: str, subnet: str, gateway: str, **fields: object) -> NetworkStatus:
    values: dict[str, object] = {
        "id": network_id,
        "kind": "macvlan",
        "mode": "bridge",
        "parent": "eth0",
        "vlan": 10,
        "link": "eth0.10",
        "subnets": [SubnetStatus(subnet=subnet, gateway=gateway)],
        "owned_links": ["eth0.10"],
    }
    values.update(fields)
    return NetworkStatus.model_validate(values)


def pool(subnet: str, **fields: object) -> PoolStatus:
    values: dict[str, object] = {
        "pool_id": f"local/default/{subnet}",
        "subnet": subnet,
        "family": 4,
        "address_space": "local",
        "lan": "default",
        "host_ranges": [subnet],
        "counts": PoolCounts(size=254, used=2, free=251, quarantined=1, lan_in_use=0),
    }
    values.update(fields)
    return PoolStatus.model_validate(values)


def report(**fields: object) -> StatusReport:
    values: dict[str, object] = {
        "source": "daemon",
        "state_dir": "/var/lib/pymacvlan",
        "node_name": "node1",
        "generated_at": NOW,
        "health": "ready",
        "networks": [
            network(NET_A, "192.0.2.0/24", "192.0.2.1", name="lan"),
            network(NET_B, "198.51.100.0/24", "198.51.100.1", name="dmz"),
        ],
        "endpoints": [
            EndpointStatus(
                id=EP_A,
                network_id=NET_A,
                link="pmve1e1e1e1e1e1",
                mac="02:42:c0:00:02:0a",
                ipv4="192.0.2.10/24",
                container="web",
            ),
            EndpointStatus(
                id=EP_B, network_id=NET_B, link="pmve2e2e2e2e2e2", ipv4="198.51.100.10/24"
            ),
        ],
        "owned_links": [
            OwnedLinkStatus(
                name="eth0.10", kind="vlan", base="eth0", vlan=10, networks=[NET_A, NET_B]
            )
        ],
        "pools": [pool("192.0.2.0/24"), pool("198.51.100.0/24")],
        "allocations": [
            AllocationStatus(
                pool_id="local/default/192.0.2.0/24",
                subnet="192.0.2.0/24",
                address="192.0.2.10",
                kind="dynamic",
                endpoint="web",
                allocated_at=NOW - 3700,
            ),
            AllocationStatus(
                pool_id="local/default/198.51.100.0/24",
                subnet="198.51.100.0/24",
                address="198.51.100.10",
                kind="dynamic",
                allocated_at=NOW - 5,
            ),
        ],
        "lan_conflicts": [
            LanConflictStatus(
                address_space="local",
                lan="default",
                subnet="198.51.100.0/24",
                address="198.51.100.77",
                mac="00:11:22:33:44:55",
                seen_at=NOW - 60,
            )
        ],
        "claims": [
            ClaimStatus(
                address="192.0.2.10",
                expected_mac="02:42:c0:00:02:0a",
                foreign_mac="00:aa:bb:cc:dd:ee",
                link="eth0.10",
                seen_at=NOW - 10,
            )
        ],
        "claims_seen": 3,
        "cluster": ClusterStatus(
            node="node1",
            instance="5f0c3a1e9b2d7c44",
            blocks=[
                ClusterBlockStatus(
                    address_space="local",
                    lan="default",
                    block="198.51.100.0/26",
                    pool="198.51.100.0/24",
                    claimed_at=NOW - 86400 * 2,
                )
            ],
        ),
    }
    values.update(fields)
    return StatusReport.model_validate(values)


# ------------------------------------------------------------------------------ narrowing


def test_a_network_is_named_by_its_id_or_the_start_of_it() -> None:
    r = report()
    assert match_network(r, NET_B) == NET_B
    assert match_network(r, "aaaa2") == NET_B
    with pytest.raises(NoSuchNetwork, match="ambiguous: it begins the ids of 2 networks"):
        match_network(r, "aaaa")
    with pytest.raises(NoSuchNetwork, match="holds no network 'lan'"):
        match_network(r, "lan")
    with pytest.raises(NoSuchNetwork) as refused:
        match_network(r, "x" * 10_000)
    assert len(str(refused.value)) < 300


def stale(address: str, verdict: str = "stale", **fields: object) -> StaleAllocationStatus:
    subnet = "192.0.2.0/24" if address.startswith("192.0.2.") else "198.51.100.0/24"
    values: dict[str, object] = {
        "pool_id": f"local/default/{subnet}",
        "subnet": subnet,
        "address": address,
        "kind": "dynamic",
        "allocated_at": NOW - 7200,
        "verdict": verdict,
        "reason": "unused: the pymacvlan network driver lists no user of it",
    }
    values.update(fields)
    return StaleAllocationStatus.model_validate(values)


def test_narrowing_keeps_what_belongs_to_the_network() -> None:
    r = narrow(report(stale_allocations=[stale("192.0.2.20"), stale("198.51.100.20")]), [NET_B])
    assert [s.address for s in r.stale_allocations] == ["198.51.100.20"]
    assert [n.id for n in r.networks] == [NET_B]
    assert [e.id for e in r.endpoints] == [EP_B]
    assert [p.subnet for p in r.pools] == ["198.51.100.0/24"]
    assert [a.address for a in r.allocations] == ["198.51.100.10"]
    assert [c.address for c in r.lan_conflicts] == ["198.51.100.77"]
    assert r.claims == []  # the claim is of the other network's container
    assert r.cluster is not None
    assert [b.block for b in r.cluster.blocks] == ["198.51.100.0/26"]
    assert [link.name for link in r.owned_links] == ["eth0.10"]  # shared by both
    assert r.narrowed_to == [NET_B]
    assert narrow(report(), [NET_A]).cluster.blocks == []  # type: ignore[union-attr]


# -------------------------------------------------------------------------------- tables


def test_tables_align_columns_and_numbers_right() -> None:
    lines = table(["A", "NUMBER"], [["x", "7"], ["longer", "1234"]], right=frozenset({1}))
    assert lines == ["A       NUMBER", "x            7", "longer    1234"]
    assert table(["A"], []) == []


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (3600, "1h"),
        (3700, "1h01m"),
        (86400, "1d"),
        (90000, "1d1h"),
    ],
)
def test_durations_read_at_a_glance(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


def test_the_report_for_people() -> None:
    text = render(report(), origin="pymacvlan answers on /run/x.sock", now=NOW)
    lines = text.splitlines()
    assert lines[0] == "pymacvlan answers on /run/x.sock"
    assert lines[1] == "state: ready, /var/lib/pymacvlan, node node1"
    titles = [line for before, line in itertools.pairwise(lines) if not before]
    assert titles[:5] == ["NETWORKS", "ENDPOINTS", "POOLS", "ALLOCATIONS", "OWNED LINKS"]
    assert "CLUSTER BLOCKS" in titles
    assert "DHCP LEASES" not in titles
    assert "FOUND IN USE ON THE LAN (probing)" in titles
    assert "CLAIMED BY OTHER DEVICES" in titles
    row = lines[lines.index("NETWORKS") + 2].split()
    assert row == [
        NET_A[:12],
        "lan",
        "macvlan",
        "bridge",
        "eth0",
        "10",
        "192.0.2.0/24",
        "192.0.2.1",
    ]
    assert f"{NET_A[:12]}: containers on eth0.10 (made by pymacvlan)" in lines
    row = lines[lines.index("ENDPOINTS") + 3].split()
    assert row == [EP_B[:12], "dmz", "-", "198.51.100.10/24", "-", "pmve2e2e2e2e2e2"]
    row = lines[lines.index("ALLOCATIONS") + 2].split()
    assert row == ["192.0.2.10", "dynamic", "web", "-", "1h01m"]
    assert "3 claiming frames since the daemon started" in lines
    assert max(len(line) for line in lines) <= 100


def test_without_docker_names_are_unknown_and_it_says_why() -> None:
    nameless = report(
        networks=[network(NET_A, "192.0.2.0/24", "192.0.2.1")],
        endpoints=[EndpointStatus(id=EP_A, network_id=NET_A, link="pmv1", ipv4="192.0.2.10/24")],
        names_problem="Docker does not answer on /var/run/docker.sock: No such file or directory",
    )
    lines = render(nameless, origin="o", now=NOW).splitlines()
    assert "names: name unknown: Docker does not answer on /var/run/docker.sock" in lines[2]
    assert "name unknown" in lines[lines.index("NETWORKS") + 2]
    assert "name unknown" in lines[lines.index("ENDPOINTS") + 2]
    # Docker asked, network unknown to it: a network Docker forgot.
    forgotten = nameless.model_copy(update={"names_problem": None})
    lines = render(forgotten, origin="o", now=NOW).splitlines()
    assert "not in Docker" in lines[lines.index("NETWORKS") + 2]


def test_an_empty_or_unusable_state_still_shows_its_sections_and_problems() -> None:
    empty = StatusReport(
        source="state-dir",
        state_dir="/srv/state",
        generated_at=NOW,
        health="unusable",
        problems=["/srv/state/ipam.sqlite3 is missing"],
    )
    lines = render(
        empty, origin="the daemon is not running; read from /srv/state", now=NOW
    ).splitlines()
    assert "problem: /srv/state/ipam.sqlite3 is missing" in lines
    for title in ("NETWORKS", "ENDPOINTS", "POOLS"):
        assert lines[lines.index(title) + 1] == "(none)"
    assert "ALLOCATIONS" not in lines


def test_stale_allocations_show_how_to_free_them() -> None:
    why = "not certain: Docker was not asked (the daemon never calls it; `pymacvlan gc` does)"
    found = [
        stale("192.0.2.20", endpoint="lost"),
        stale("198.51.100.20", "suspect", reason=why),
        stale("198.51.100.21", "suspect", reason="another reason"),
    ]
    lines = render(report(stale_allocations=found), origin="o", now=NOW).splitlines()
    at = lines.index("STALE ALLOCATIONS (certain without Docker)")
    assert lines[at + 1 : at + 3] == [
        "ADDRESS     SUBNET        KIND     ENDPOINT NAME  HELD FOR",
        "192.0.2.20  192.0.2.0/24  dynamic  lost           2h",
    ]
    hint = lines.index("free them with `pymacvlan gc` (add --dry-run to see first)")
    suspect = " ".join(line.strip() for line in lines[at + 3 : hint])
    assert suspect == f"2 suspect (perhaps stale, not certain without Docker): {why}"
    assert lines[hint + 1] == ""  # the end of the section
    assert max(len(line) for line in lines) <= 100

    # Only suspect ones: no table, the line and the hint.
    lines = render(report(stale_allocations=found[1:2]), origin="o", now=NOW).splitlines()
    at = lines.index("STALE ALLOCATIONS (certain without Docker)")
    assert lines[at + 1].startswith("1 suspect (perhaps stale, not certain without Docker): ")
    assert "free them with `pymacvlan gc` (add --dry-run to see first)" in lines[at + 2 : at + 4]

    # None: nothing at all.
    text = render(report(), origin="o", now=NOW)
    assert "STALE" not in text
    assert "pymacvlan gc" not in text


def test_dhcp_leases_show_their_state_and_time_left() -> None:
    lease = DhcpLeaseStatus(
        pool_id="p",
        address="192.0.2.50",
        prefixlen=24,
        mac="02:00:00:00:00:01",
        server_id="192.0.2.1",
        acquired_at=NOW - 100,
        lease_seconds=3600,
        expires_at=NOW + 3500,
        state="bound",
    )
    lines = render(report(dhcp_leases=[lease]), origin="o", now=NOW).splitlines()
    row = lines[lines.index("DHCP LEASES") + 2].split()
    assert row == ["192.0.2.50/24", "bound", "02:00:00:00:00:01", "192.0.2.1", "58m", "-"]


def test_the_report_survives_json_both_ways() -> None:
    original = report()
    assert StatusReport.model_validate_json(original.model_dump_json()) == original
    newer = {**original.model_dump(mode="json"), "a_field_of_a_newer_daemon": 1}
    assert StatusReport.model_validate(newer) == original
