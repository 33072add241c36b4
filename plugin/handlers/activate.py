"""``/Plugin.Activate``."""

from __future__ import annotations

from plugin.services import Services
from plugin.wire.activate import IPAM_DRIVER, NETWORK_DRIVER, ActivateResponse
from plugin.wire.base import Empty


async def activate(_: Services, __: Empty) -> ActivateResponse:
    return ActivateResponse(implements=[NETWORK_DRIVER, IPAM_DRIVER])
