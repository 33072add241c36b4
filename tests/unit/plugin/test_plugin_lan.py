"""plugin/lan.py: which link the IPAM's questions go out on, and with which MAC, over a fake
network driver (the kernel side is tested in tests/kernel/test_dhcp_client.py and
test_lan_probe.py)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from driver.lan import dhcp_client
from driver.lan.dhcp_lease import DhcpLease
from driver.service import LanLink
from ipam.lan import DhcpIdentity, LanUnavailable, PoolPlace
from plugin import lan as plugin_lan
from plugin.lan import DriverLan

pytestmark = pytest.mark.asyncio

PLACE = PoolPlace("local", "default", "192.0.2.0/24")
CONTAINER_MAC = "02:42:c0:00:02:77"
LINK_MAC = "02:00:00:00:00:01"
IDENTITY = DhcpIdentity(CONTAINER_MAC, b"\x01" + bytes.fromhex("0242c0000277"), "desk")


class FakeDriver:
    def __init__(self, *links: LanLink) -> None:
        self.links = list(links)

    def lan_links(self, subnet: str) -> list[LanLink]:
        return [link for link in self.links if subnet == PLACE.subnet]


def lease() -> DhcpLease:
    return DhcpLease(
        address=ipaddress.IPv4Interface("192.0.2.100/24"),
        router=ipaddress.IPv4Address("192.0.2.1"),
        dns=(),
        server_id=ipaddress.IPv4Address("192.0.2.254"),
        server_mac="02:00:00:00:00:fe",
        lease_seconds=120,
        renew_seconds=60,
        rebind_seconds=105,
        acquired_at=1.0,
    )


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    async def acquire(link: str, **kwargs: Any) -> DhcpLease:
        calls.append({"link": link, **kwargs})
        return lease()

    monkeypatch.setattr(dhcp_client, "acquire", acquire)
    monkeypatch.setattr(DriverLan, "_link_mac", staticmethod(lambda link: LINK_MAC))
    return calls


async def test_a_macvlan_lease_is_asked_with_the_containers_mac(
    sent: list[dict[str, Any]],
) -> None:
    lan = DriverLan(FakeDriver(LanLink("n1", "eth1", on_lan=True, infrastructure=frozenset())))  # type: ignore[arg-type]
    grant = await lan.dhcp_acquire(PLACE, IDENTITY, None)
    assert grant.address == "192.0.2.100"
    assert grant.prefixlen == 24
    assert sent[0]["link"] == "eth1"
    assert sent[0]["mac"] == CONTAINER_MAC
    assert sent[0]["client_id"] == IDENTITY.client_id
    assert sent[0]["hostname"] == "desk"


async def test_an_ipvlan_lease_is_asked_with_the_links_own_mac_and_the_containers_client_id(
    sent: list[dict[str, Any]],
) -> None:
    link = LanLink("n1", "eth1.30", on_lan=True, infrastructure=frozenset(), shares_mac=True)
    lan = DriverLan(FakeDriver(link))  # type: ignore[arg-type]
    await lan.dhcp_acquire(PLACE, IDENTITY, None)
    assert sent[0]["link"] == "eth1.30"
    assert sent[0]["mac"] == LINK_MAC
    assert sent[0]["client_id"] == IDENTITY.client_id


async def test_a_subnet_on_no_lan_cannot_be_asked(sent: list[dict[str, Any]]) -> None:
    with pytest.raises(LanUnavailable, match=r"no network on this host carries 192\.0\.2\.0/24"):
        await DriverLan(FakeDriver()).dhcp_acquire(PLACE, IDENTITY, None)  # type: ignore[arg-type]
    dummy = LanLink("n1", "dm-n1", on_lan=False, infrastructure=frozenset())
    with pytest.raises(LanUnavailable, match="not on a LAN"):
        await DriverLan(FakeDriver(dummy)).holder(PLACE, "192.0.2.5", 0.1)  # type: ignore[arg-type]
    assert not sent


async def test_aux_addresses_are_never_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    async def probe(link: str, address: object, **kwargs: Any) -> str | None:
        asked.append(str(address))
        return "02:00:00:00:00:99"

    monkeypatch.setattr(plugin_lan, "probe_address", probe)
    link = LanLink("n1", "eth1", on_lan=True, infrastructure=frozenset({"192.0.2.9"}))
    lan = DriverLan(FakeDriver(link))  # type: ignore[arg-type]
    assert await lan.holder(PLACE, "192.0.2.9", 0.1, reserved=True) is None
    assert await lan.holder(PLACE, "192.0.2.10", 0.1, reserved=True) == "02:00:00:00:00:99"
    assert asked == ["192.0.2.10"]
