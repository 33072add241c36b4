"""IpamDriver's handshake answers come from the IPAM service's own declarations, not from copies."""

from __future__ import annotations

import pytest

from ipam.service import AddressSpaces, Capabilities, IpamService
from tests.api.conftest import PluginClient

pytestmark = pytest.mark.asyncio


async def test_capabilities_and_address_spaces_are_the_services(
    client: PluginClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default settings: Docker's MACs are not asked for, the state needs no replay.
    assert await client.ok("IpamDriver.GetCapabilities") == {
        "RequiresMACAddress": False,
        "RequiresRequestReplay": False,
    }
    # One source of truth: what the service declares is what Docker is told.
    monkeypatch.setattr(IpamService, "capabilities", property(lambda _: Capabilities(True, True)))
    monkeypatch.setattr(IpamService, "address_spaces", AddressSpaces("here", "everywhere"))
    assert await client.ok("IpamDriver.GetCapabilities") == {
        "RequiresMACAddress": True,
        "RequiresRequestReplay": True,
    }
    assert await client.ok("IpamDriver.GetDefaultAddressSpaces") == {
        "LocalDefaultAddressSpace": "here",
        "GlobalDefaultAddressSpace": "everywhere",
    }
