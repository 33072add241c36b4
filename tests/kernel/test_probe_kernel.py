"""Probing before hand-out (issue 9, part 1) through the real daemon, on real links.

A daemon serves a throwaway "host" namespace whose "physical" parent ``lab0`` is a veth to a
"LAN" namespace. That LAN namespace is a device pymacvlan never heard of: it holds 192.0.2.2 and
2001:db8::2 (no DAD delay) and its kernel answers ARP probes and DAD solicitations for them. The
test drives the daemon as dockerd does (RequestPool, the gateway, CreateNetwork, RequestAddress)
and reads what a user sees: the address handed out, the error text, the daemon's log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.harness.netns import Netns, NetnsLab
from tests.harness.plugind import PluginDaemon, PluginDaemons
from tests.kernel.sandbox import ok

NET = "d4" * 32
NET2 = "e5" * 32
ENDPOINT_NAME = "com.docker.network.endpoint.name"
GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}


@dataclass
class Host:
    ns: Netns
    lan: Netns  # the foreign device
    foreign_mac: str
    daemon: PluginDaemon

    def network(
        self,
        *subnets: str,
        network_id: str = NET,
        sub_pool: str = "",
        aux: str = "",
        **ipam_options: str,
    ) -> list[str]:
        """`docker network create -d P --ipam-driver P --subnet S [--subnet S6] -o parent=lab0`:
        the pool IDs, in the order of `subnets`.

        Docker asks for each gateway (the first address) before CreateNetwork; gateways are
        never probed, and CreateNetwork starts the prefetch of the first candidates."""
        pool_ids: list[str] = []
        data: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for subnet in subnets:
            v6 = ":" in subnet
            pool = ok(
                self.daemon,
                "IpamDriver.RequestPool",
                {
                    "AddressSpace": "local",
                    "Pool": subnet,
                    "SubPool": sub_pool,
                    "Options": ipam_options,
                    "V6": v6,
                },
            )
            gateway = ok(
                self.daemon,
                "IpamDriver.RequestAddress",
                {"PoolID": pool["PoolID"], "Address": "", "Options": GATEWAY},
            )["Address"]
            entry: dict[str, Any] = {"AddressSpace": "local", "Pool": subnet, "Gateway": gateway}
            if aux:  # --aux-address: asked for like an --ip on Docker < 29 (no endpoint name)
                ok(
                    self.daemon,
                    "IpamDriver.RequestAddress",
                    {"PoolID": pool["PoolID"], "Address": aux},
                )
                entry["AuxAddresses"] = {"router2": f"{aux}/{subnet.split('/')[1]}"}
            data[v6].append(entry)
            pool_ids.append(str(pool["PoolID"]))
        ok(
            self.daemon,
            "NetworkDriver.CreateNetwork",
            {
                "NetworkID": network_id,
                "Options": {"com.docker.network.generic": {"parent": "lab0"}},
                "IPv4Data": data[False],
                "IPv6Data": data[True],
            },
        )
        return pool_ids

    def request(self, pool_id: str, address: str = "", name: str = "") -> tuple[int, Any]:
        options = {ENDPOINT_NAME: name} if name else {}
        return self.daemon.call(
            "IpamDriver.RequestAddress",
            {"PoolID": pool_id, "Address": address, "Options": options},
        )

    def conflict_lines(self) -> list[str]:
        return [line for line in self.daemon.log().splitlines() if "in use on the LAN" in line]


@pytest.fixture
def host(netns_lab: NetnsLab, plugin_daemons: PluginDaemons) -> Host:
    ns = netns_lab.netns("host")
    lan = netns_lab.netns("lan")
    netns_lab.veth(ns, "lab0", lan, "wire0")
    lan.add_address("wire0", "192.0.2.2/24")
    lan.add_address("wire0", "2001:db8::2/64")  # nodad: valid (and answering) at once
    link = lan.link("wire0")
    assert link is not None
    daemon = plugin_daemons.spawn("node1", netns=ns, env={"PYMACVLAN_ANNOUNCE_COUNT": "0"})
    return Host(ns, lan, str(link["address"]), daemon)


def test_an_address_a_lan_device_answers_for_is_skipped_and_logged(host: Host) -> None:
    (pool_id,) = host.network("192.0.2.0/24")
    status, answer = host.request(pool_id, name="c1")
    assert (status, answer) == (200, {"Address": "192.0.2.3/24", "Data": {}})
    (line,) = host.conflict_lines()
    assert "address=192.0.2.2" in line
    assert f"mac={host.foreign_mac}" in line
    assert "level=warning" in line


def test_an_ip_a_lan_device_answers_for_is_refused_naming_its_mac(host: Host) -> None:
    (pool_id,) = host.network("192.0.2.0/24")
    status, answer = host.request(pool_id, "192.0.2.2", name="c1")
    assert status == 500
    assert answer["Err"].startswith(
        f"Address already in use on the LAN: 192.0.2.2 answers from MAC {host.foreign_mac}"
    )
    # A quiet address is handed out as asked.
    assert host.request(pool_id, "192.0.2.20", name="c2") == (
        200,
        {"Address": "192.0.2.20/24", "Data": {}},
    )


def test_with_probe_dynamic_the_ip_is_handed_out(host: Host) -> None:
    (pool_id,) = host.network("192.0.2.0/24", probe="dynamic")
    assert host.request(pool_id, "192.0.2.2", name="c1") == (
        200,
        {"Address": "192.0.2.2/24", "Data": {}},
    )
    assert host.conflict_lines() == []


def test_ipv6_duplicate_address_detection_skips_the_held_address(host: Host) -> None:
    _, pool_id = host.network("198.51.100.0/24", "2001:db8::/64")
    status, answer = host.request(pool_id, name="c1")
    assert (status, answer) == (200, {"Address": "2001:db8::3/64", "Data": {}})
    (line,) = host.conflict_lines()
    assert "address=2001:db8::2" in line
    assert f"mac={host.foreign_mac}" in line
    status, answer = host.request(pool_id, "2001:db8::2", name="c2")
    assert status == 500
    assert f"2001:db8::2 answers from MAC {host.foreign_mac}" in answer["Err"]


def test_an_aux_address_that_answers_is_not_refused_on_a_lan_already_probed(host: Host) -> None:
    # Two networks on one LAN (docs/ipam.md): the second one lists the LAN's device as an aux
    # address. The first network's link makes the LAN askable, yet an aux address is supposed to
    # answer: it must not fail `docker network create`.
    host.network("192.0.2.0/24", sub_pool="192.0.2.0/25")
    (second,) = host.network(
        "192.0.2.0/24", network_id=NET2, sub_pool="192.0.2.128/25", aux="192.0.2.2"
    )
    assert host.conflict_lines() == []
    # Once the network exists, Docker < 29's `--ip` (no endpoint name either) is probed.
    host.lan.add_address("wire0", "192.0.2.3/24")
    status, answer = host.request(second, "192.0.2.3")
    assert status == 500
    assert f"192.0.2.3 answers from MAC {host.foreign_mac}" in answer["Err"]
