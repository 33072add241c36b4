"""RequestAddress parsing: which kind of allocation a call asks for.

Rule: the kind is read from what Docker sends, nothing else:

* `Options["RequestAddressType"] == "com.docker.network.gateway"` -> gateway (with or without a
  specific address);
* a specific address with `Options["com.docker.network.endpoint.name"]` (Docker >= 29 names every
  endpoint) -> static (`--ip`);
* a specific address without an endpoint name -> reserved: `--aux-address`, and also `--ip` on
  Docker < 29, which sends no endpoint name, so the two cannot be told apart there;
* no address -> dynamic.

Other options (the MAC address, swarm's `com.docker.network.ipam.serial`) never change the kind.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ipam.addresses import ASCII_SPACE, Family, parse_address
from ipam.errors import InvalidRequest
from ipam.records import Kind

OPT_REQUEST_ADDRESS_TYPE = "RequestAddressType"
GATEWAY_REQUEST = "com.docker.network.gateway"
OPT_ENDPOINT_NAME = "com.docker.network.endpoint.name"
OPT_MAC_ADDRESS = "com.docker.network.endpoint.macaddress"

# Docker sends the MAC as Go's net.HardwareAddr writes it. It is only recorded (for the
# operator), so anything else is not recorded rather than refused.
_MAC: Final = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
# Endpoint names are container names: recorded, and quoted in "address in use" messages.
MAX_ENDPOINT_NAME: Final = 255


@dataclass(frozen=True)
class AddressRequest:
    """A RequestAddress call, parsed; `value` is None when any address will do."""

    family: Family | None
    value: int | None
    kind: Kind
    endpoint: str | None = None
    mac: str | None = None


def parse_address_request(address: str, options: Mapping[str, str]) -> AddressRequest:
    family: Family | None = None
    value: int | None = None
    if address.strip(ASCII_SPACE):
        family, value = parse_address(address, what="requested address")
    endpoint = options.get(OPT_ENDPOINT_NAME) or None
    if endpoint is not None and len(endpoint) > MAX_ENDPOINT_NAME:
        raise InvalidRequest(
            f"endpoint name ({OPT_ENDPOINT_NAME}) has {len(endpoint)} characters; at most "
            f"{MAX_ENDPOINT_NAME} are allowed"
        )
    given_mac = (options.get(OPT_MAC_ADDRESS) or "").strip(ASCII_SPACE).lower()
    mac = given_mac if _MAC.fullmatch(given_mac) else None
    if options.get(OPT_REQUEST_ADDRESS_TYPE) == GATEWAY_REQUEST:
        kind = Kind.GATEWAY
    elif value is None:
        kind = Kind.DYNAMIC
    elif endpoint is not None:
        kind = Kind.STATIC
    else:
        kind = Kind.RESERVED
    return AddressRequest(family, value, kind, endpoint, mac)
