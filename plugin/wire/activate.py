"""``/Plugin.Activate``: the handshake that tells Docker which interfaces we implement."""

from __future__ import annotations

from pydantic import Field

from plugin.wire.base import WireResponse

NETWORK_DRIVER = "NetworkDriver"
IPAM_DRIVER = "IpamDriver"


class ActivateResponse(WireResponse):
    implements: list[str] = Field(alias="Implements")
