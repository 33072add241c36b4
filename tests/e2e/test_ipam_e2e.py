"""pymacvlan as the --ipam-driver of an ordinary bridge network, with a real dockerd.

The bridge is internal and does not masquerade: containers talk only to each other. The bridge
lives in the root namespace, whose uplink sits in 192.0.2.0/24: these networks use the other
documentation ranges.
"""

from __future__ import annotations

import ipaddress

import pytest

from tests.e2e.conftest import Plugin, wait_for

BRIDGE_SAFE = ("--internal", "-o", "com.docker.network.bridge.enable_ip_masquerade=false")


def create(plugin: Plugin, name: str, *args: str) -> None:
    plugin.docker("network", "create", *BRIDGE_SAFE, "--ipam-driver", plugin.name, *args, name)


def run(plugin: Plugin, image: str, name: str, network: str, *args: str) -> None:
    plugin.docker("run", "-d", "--name", name, "--network", network, *args, image, "sleep", "600")


@pytest.mark.e2e
def test_addresses_ranges_aux_and_errors_as_the_user_sees_them(
    unmanaged_plugin: Plugin, busybox_image: str
) -> None:
    p = unmanaged_plugin
    create(
        p,
        "ipamnet",
        "--subnet",
        "198.51.100.0/24",
        "--ip-range",
        "198.51.100.128/30",
        "--gateway",
        "198.51.100.1",
        "--aux-address",
        "router2=198.51.100.2",
    )
    run(p, busybox_image, "auto1", "ipamnet")
    run(p, busybox_image, "fixed", "ipamnet", "--ip", "198.51.100.50")
    auto_ip = p.ip_of("auto1", "ipamnet")
    assert ipaddress.ip_address(auto_ip) in ipaddress.ip_network("198.51.100.128/30")
    assert p.ip_of("fixed", "ipamnet") == "198.51.100.50"
    p.docker("exec", "auto1", "ping", "-c", "1", "-W", "2", "198.51.100.50")

    # The aux address is reserved: no container gets it, even when asked for it.
    err = p.fails(
        "run", "--rm", "--network", "ipamnet", "--ip", "198.51.100.2", busybox_image, "true"
    )
    assert "Address already in use: 198.51.100.2" in err

    # Exhaust the ip-range (four addresses), then read the error a user gets.
    for n in range(2, 5):
        run(p, busybox_image, f"auto{n}", "ipamnet")
    err = p.fails("run", "--rm", "--network", "ipamnet", busybox_image, "true")
    assert "no available addresses on this pool" in err
    assert "198.51.100.0/24" in err


@pytest.mark.e2e
def test_network_rm_releases_every_address_and_the_pool(
    unmanaged_plugin: Plugin, busybox_image: str
) -> None:
    p = unmanaged_plugin
    args = (
        "--subnet",
        "198.51.100.0/24",
        "--gateway",
        "198.51.100.1",
        "--aux-address",
        "h=198.51.100.2",
    )
    create(p, "once", *args)
    run(p, busybox_image, "c1", "once", "--ip", "198.51.100.10")
    p.docker("rm", "-f", "c1")
    p.docker("network", "rm", "once")
    # Everything came back: the same network again, the same gateway, aux and --ip.
    create(p, "twice", *args)
    run(p, busybox_image, "c2", "twice", "--ip", "198.51.100.10")
    assert p.ip_of("c2", "twice") == "198.51.100.10"


@pytest.mark.e2e
def test_dockerd_restart_keeps_networks_and_addresses(
    unmanaged_plugin: Plugin, busybox_image: str
) -> None:
    p = unmanaged_plugin
    create(p, "keep", "--subnet", "203.0.113.0/24", "--gateway", "203.0.113.1")
    run(p, busybox_image, "pinned", "keep", "--restart=always", "--ip", "203.0.113.20")
    run(p, busybox_image, "other", "keep", "--restart=always")
    before = {c: p.ip_of(c, "keep") for c in ("pinned", "other")}

    p.dockerd.kill9()
    p.dockerd.start()
    wait_for(
        lambda: all(
            p.docker("inspect", "-f", "{{.State.Running}}", c).strip() == "true" for c in before
        ),
        what="containers restarted by dockerd",
    )
    after = {c: p.ip_of(c, "keep") for c in before}
    assert after["pinned"] == "203.0.113.20"
    assert len(set(after.values())) == 2
    p.docker("exec", "other", "ping", "-c", "1", "-W", "2", "203.0.113.20")
    # The network still hands out addresses, and none twice.
    run(p, busybox_image, "new", "keep")
    assert p.ip_of("new", "keep") not in after.values()
