"""What Docker's engine says is in use on the subnets of this plugin's IPAM (the command line
asks it, for `gc`; the daemon never does).

A network is this plugin's when its IPAM driver is one of the names Docker knows the plugin by
(`ipam_names`). Matching by name, not by "every network on a subnet of ours", is what makes the
answer about *this* plugin: an engine that is not the one the daemon serves has no network with
its name, and then nothing is certain. The addresses, though, are collected from every network
on those subnets, whatever its drivers: an address some container of this engine uses there is
never called unused.
"""

from __future__ import annotations

import ipaddress
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from plugin.admin.engine import Engine
from plugin.admin.locate import Target

LATEST = ":latest"


@dataclass(frozen=True)
class DockerAnswer:
    asked_at: float  # before the first question: anything allocated after it, Docker may miss
    subnets: dict[str, list[str]]  # subnet (CIDR) -> addresses in use there
    networks: list[str]  # names of the networks whose IPAM is this plugin

    def to_wire(self) -> dict[str, Any]:
        return {"asked_at": self.asked_at, "subnets": self.subnets}


def ipam_names(target: Target, plugin: str) -> set[str]:
    """The names Docker may know this plugin's IPAM by: the managed plugin's name (`--plugin`,
    and as Docker reports it), a daemon run by hand by its socket's name in Docker's plugin
    directory; each with and without ":latest" (a managed plugin's drivers carry the tag)."""
    names = {plugin}
    if target.plugin is not None:
        names.add(target.plugin.name)
    else:
        names.add(target.socket.stem)
    return {form for name in names if name for form in (name.removesuffix(LATEST), _tagged(name))}


def _tagged(name: str) -> str:
    return name if name.endswith(LATEST) else name + LATEST


def ask_docker(engine: Engine, names: set[str]) -> DockerAnswer:
    """Ask `engine` (raises EngineUnavailable)."""
    asked_at = time.time()
    listed = engine.get("/networks")
    details = []
    for summary in _ours_or_sharing(listed, names):
        details.append(engine.get(f"/networks/{urllib.parse.quote(summary['Id'], safe='')}"))
    subnets, networks = addresses_in_use(details, names)
    return DockerAnswer(asked_at, subnets, networks)


def _ours_or_sharing(listed: Any, names: set[str]) -> list[dict[str, Any]]:
    """The networks to inspect: this plugin's, and every other on one of their subnets."""
    networks = [n for n in listed if isinstance(n, dict)] if isinstance(listed, list) else []
    ours = {s for n in networks if _ipam_driver(n) in names for s in _subnets(n)}
    return [n for n in networks if _ipam_driver(n) in names or ours & set(_subnets(n))]


def addresses_in_use(
    networks: Iterable[dict[str, Any]], names: set[str]
) -> tuple[dict[str, list[str]], list[str]]:
    """From `GET /networks/ID` answers: per subnet of this plugin's networks, the addresses in use
    there (containers' endpoints, gateways, aux addresses, of every network on the subnet); and
    the names of this plugin's networks."""
    networks = list(networks)
    ours = sorted(str(n.get("Name", n.get("Id", ""))) for n in networks if _ipam_driver(n) in names)
    wanted = {s for n in networks if _ipam_driver(n) in names for s in _subnets(n)}
    found: dict[str, set[str]] = {s: set() for s in wanted}
    for network in networks:
        pools = [ipaddress.ip_network(s) for s in _subnets(network) if s in wanted]
        if not pools:
            continue
        candidates = list(_infrastructure(network)) + list(_endpoint_addresses(network))
        for text in candidates:
            try:
                ip = ipaddress.ip_interface(text).ip
            except ValueError:
                continue
            for pool in pools:
                if ip.version == pool.version and ip in pool:
                    found[str(pool)].add(str(ip))
    return {s: sorted(a) for s, a in sorted(found.items())}, ours


def _ipam_driver(network: dict[str, Any]) -> str:
    return str((network.get("IPAM") or {}).get("Driver") or "")


def _subnets(network: dict[str, Any]) -> list[str]:
    """The network's IPAM subnets, canonical (Docker's text may carry host bits)."""
    found = []
    for config in (network.get("IPAM") or {}).get("Config") or []:
        try:
            found.append(str(ipaddress.ip_network(str(config.get("Subnet", "")), strict=False)))
        except ValueError:
            continue
    return found


def _infrastructure(network: dict[str, Any]) -> Iterable[str]:
    for config in (network.get("IPAM") or {}).get("Config") or []:
        if config.get("Gateway"):
            yield str(config["Gateway"])
        yield from (str(a) for a in (config.get("AuxiliaryAddresses") or {}).values())


def _endpoint_addresses(network: dict[str, Any]) -> Iterable[str]:
    for endpoint in (network.get("Containers") or {}).values():
        for key in ("IPv4Address", "IPv6Address"):
            if endpoint.get(key):
                yield str(endpoint[key])
