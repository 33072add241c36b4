"""The driver's durable records (networks, endpoints, owned links) and their JSON form.

What `driver/store.py` keeps in `driver.sqlite3`, one JSON document per row. Pure: the codec
reads back what earlier versions wrote (an owned link's mode as one string), and a record it
cannot read raises `StoreError` (the store says which file it came from).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from driver.config import NetworkConfig, Parent, Subnet
from driver.errors import StoreError
from driver.linkinfo import (
    IPVLAN_FLAGS,
    IPVLAN_MODES,
    MACVLAN_MODES,
    IpvlanFlag,
    IpvlanMode,
    MacvlanMode,
)


@dataclass(frozen=True)
class EndpointRecord:
    endpoint_id: str
    network_id: str
    link_name: str
    mac: str = ""  # the MAC the link gets ("" → the kernel's choice, ipvlan: the parent's)
    mac_generated: bool = False  # we chose it (and told Docker), rather than Docker
    ipv4: ipaddress.IPv4Interface | None = None
    ipv6: ipaddress.IPv6Interface | None = None


OwnedKind = Literal["vlan", "dummy", "macvlan", "ipvlan"]  # VLAN and dummy parents, host shims
OWNED_KINDS: tuple[OwnedKind, ...] = ("vlan", "dummy", "macvlan", "ipvlan")
_Choice = TypeVar("_Choice", bound=str)


@dataclass(frozen=True)
class OwnedLink:
    """A link the plugin created and may delete: enough to recreate it after a reboot."""

    name: str
    kind: OwnedKind
    alias: str
    base: str = ""  # the VLAN's (or shim's) parent
    vlan_id: int = 0
    macvlan_mode: MacvlanMode | None = None  # a macvlan shim's mode
    ipvlan_mode: IpvlanMode | None = None  # an ipvlan shim's mode and flag
    ipvlan_flag: IpvlanFlag | None = None


@dataclass(frozen=True)
class DriverState:
    networks: tuple[NetworkConfig, ...]
    endpoints: tuple[EndpointRecord, ...]
    owned_links: tuple[OwnedLink, ...]


def network_to_json(c: NetworkConfig) -> str:
    return json.dumps(
        {
            "network_id": c.network_id,
            "kind": c.kind,
            "parent": c.parent.__dict__,
            "macvlan_mode": c.macvlan_mode,
            "ipvlan_mode": c.ipvlan_mode,
            "ipvlan_flag": c.ipvlan_flag,
            "mtu": c.mtu,
            "internal": c.internal,
            "host_address": c.host_address,
            "ipv4": [_subnet_to_dict(s) for s in c.ipv4],
            "ipv6": [_subnet_to_dict(s) for s in c.ipv6],
        },
        sort_keys=True,
    )


def network_from_json(text: str) -> NetworkConfig:
    d = json.loads(text)
    return NetworkConfig(
        network_id=d["network_id"],
        kind=d["kind"],
        parent=Parent(**d["parent"]),
        macvlan_mode=d["macvlan_mode"],
        ipvlan_mode=d["ipvlan_mode"],
        ipvlan_flag=d["ipvlan_flag"],
        mtu=d["mtu"],
        internal=d["internal"],
        host_address=d.get("host_address", ""),
        ipv4=tuple(_subnet_from_dict(s) for s in d["ipv4"]),
        ipv6=tuple(_subnet_from_dict(s) for s in d["ipv6"]),
    )


def _subnet_to_dict(s: Subnet) -> dict[str, Any]:
    return {
        "pool": str(s.pool),
        "gateway": str(s.gateway) if s.gateway else "",
        "aux": {k: str(v) for k, v in s.aux_addresses.items()},
    }


def _subnet_from_dict(d: dict[str, Any]) -> Subnet:
    return Subnet(
        pool=ipaddress.ip_network(d["pool"]),
        gateway=ipaddress.ip_address(d["gateway"]) if d["gateway"] else None,
        aux_addresses={k: ipaddress.ip_address(v) for k, v in d["aux"].items()},
    )


def owned_link_to_json(link: OwnedLink) -> str:
    return json.dumps(
        {
            "name": link.name,
            "kind": link.kind,
            "alias": link.alias,
            "base": link.base,
            "vlan_id": link.vlan_id,
            "macvlan_mode": link.macvlan_mode,
            "ipvlan_mode": link.ipvlan_mode,
            "ipvlan_flag": link.ipvlan_flag,
        },
        sort_keys=True,
    )


def owned_link_from_json(text: str) -> OwnedLink:
    """The record as ``owned_link_to_json`` writes it, or as versions before it did.

    Those kept a shim's mode as one string, ``"mode": "bridge"`` (macvlan) or ``"l2/bridge"``
    (ipvlan mode/flag), and ``""`` for other links.
    """
    d = json.loads(text)
    name = d["name"]
    kind = _one_of(d["kind"], OWNED_KINDS, "kind", name)
    if kind is None:
        raise StoreError(f"the record of owned link {name} has no kind")
    macvlan_mode, ipvlan_mode, ipvlan_flag = (
        d.get("macvlan_mode"),
        d.get("ipvlan_mode"),
        d.get("ipvlan_flag"),
    )
    if d.get("mode"):  # the older form
        if kind == "macvlan":
            macvlan_mode = d["mode"]
        elif kind == "ipvlan":
            ipvlan_mode, _, ipvlan_flag = d["mode"].partition("/")
    return OwnedLink(
        name=name,
        kind=kind,
        alias=d["alias"],
        base=d.get("base", ""),
        vlan_id=d.get("vlan_id", 0),
        macvlan_mode=_one_of(macvlan_mode, MACVLAN_MODES, "macvlan mode", name),
        ipvlan_mode=_one_of(ipvlan_mode, IPVLAN_MODES, "ipvlan mode", name),
        ipvlan_flag=_one_of(ipvlan_flag, IPVLAN_FLAGS, "ipvlan flag", name),
    )


def _one_of(value: Any, allowed: tuple[_Choice, ...], what: str, name: str) -> _Choice | None:
    if value is None:
        return None
    for choice in allowed:
        if value == choice:
            return choice
    raise StoreError(f"the record of owned link {name} has an unknown {what} {value!r}")


def endpoint_to_json(r: EndpointRecord) -> str:
    return json.dumps(
        {
            "endpoint_id": r.endpoint_id,
            "network_id": r.network_id,
            "link_name": r.link_name,
            "mac": r.mac,
            "mac_generated": r.mac_generated,
            "ipv4": str(r.ipv4) if r.ipv4 else "",
            "ipv6": str(r.ipv6) if r.ipv6 else "",
        },
        sort_keys=True,
    )


def endpoint_from_json(text: str) -> EndpointRecord:
    d = json.loads(text)
    return EndpointRecord(
        endpoint_id=d["endpoint_id"],
        network_id=d["network_id"],
        link_name=d["link_name"],
        mac=d["mac"],
        mac_generated=d["mac_generated"],
        ipv4=ipaddress.IPv4Interface(d["ipv4"]) if d["ipv4"] else None,
        ipv6=ipaddress.IPv6Interface(d["ipv6"]) if d["ipv6"] else None,
    )
