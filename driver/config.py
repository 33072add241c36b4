"""Network configuration: the ``-o`` options and IPAM data of CreateNetwork, parsed and validated.

Pure: no netlink, no disk. Option names are Docker's built-in spellings, so a user can swap
``-d macvlan`` for ``-d pymacvlan`` and keep the rest of the command. Anything we do not know is
refused with the list of what we know, because a typo silently ignored (``-o macvlan_mod=private``)
puts containers on the LAN in a mode the user did not ask for.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from driver.errors import InvalidOption
from driver.linkinfo import (
    IPVLAN_FLAGS,
    IPVLAN_MODES,
    MACVLAN_MODES,
    MAX_MTU,
    MAX_VLAN,
    MIN_MTU,
    MIN_VLAN,
    IpvlanFlag,
    IpvlanMode,
    MacvlanMode,
    check_link_name,
)
from driver.names import dummy_link_name, vlan_link_name

# -o option names, as Docker's built-in macvlan and ipvlan drivers spell them.
OPT_PARENT = "parent"  # the host interface the sub-interfaces hang off ("eth0", "eth0.10")
OPT_VLAN = "vlan"  # 802.1q id, for parents whose "name.id" would exceed 15 characters
OPT_TYPE = "type"  # macvlan (default) or ipvlan
OPT_MACVLAN_MODE = "macvlan_mode"  # bridge (default) | private | vepa | passthru
OPT_IPVLAN_MODE = "ipvlan_mode"  # l2 (default) | l3 | l3s
OPT_IPVLAN_FLAG = "ipvlan_flag"  # bridge (default) | private | vepa
OPT_MTU = "com.docker.network.driver.mtu"  # default: the parent's MTU
OPT_HOST_ADDRESS = "host_address"  # aux-address name (or address) the host's shim link carries
# host_address=@node: the aux address named after this host's node name, so that one
# `docker network create` command serves every host.
HOST_ADDRESS_NODE = "@node"

KNOWN_OPTIONS = (
    OPT_PARENT,
    OPT_VLAN,
    OPT_TYPE,
    OPT_MACVLAN_MODE,
    OPT_IPVLAN_MODE,
    OPT_IPVLAN_FLAG,
    OPT_MTU,
    OPT_HOST_ADDRESS,
)
# Options under this prefix are Docker's own (advertise_addr_nmsgs, ...): Docker reads them from
# the network's driver options itself, so we must accept them without acting on them.
DOCKER_OPTION_PREFIX = "com.docker.network."

# Top-level CreateNetwork option keys (libnetwork netlabel).
LABEL_GENERIC = "com.docker.network.generic"
LABEL_INTERNAL = "com.docker.network.internal"

Kind = Literal["macvlan", "ipvlan"]
KINDS: tuple[Kind, ...] = ("macvlan", "ipvlan")


@dataclass(frozen=True)
class Parent:
    """The link a network's sub-interfaces hang off, and how to make it if it is missing.

    ``vlan_base``/``vlan_id`` are set when the parent is an 802.1q link the plugin may create
    (``eth0.10``, or ``-o parent=eth0 -o vlan=10``). A network without ``-o parent`` gets a dummy
    link of its own (``dm-<network id>``, as Docker's drivers name it).
    """

    name: str
    vlan_base: str = ""
    vlan_id: int = 0
    dummy: bool = False  # no -o parent: the plugin's own dummy link, isolated from any LAN

    @property
    def is_vlan(self) -> bool:
        return self.vlan_id != 0


@dataclass(frozen=True)
class Subnet:
    pool: ipaddress.IPv4Network | ipaddress.IPv6Network
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    aux_addresses: Mapping[str, ipaddress.IPv4Address | ipaddress.IPv6Address] = field(
        default_factory=dict
    )


@dataclass(frozen=True)
class NetworkConfig:
    network_id: str
    kind: Kind
    parent: Parent
    macvlan_mode: MacvlanMode = "bridge"
    ipvlan_mode: IpvlanMode = "l2"
    ipvlan_flag: IpvlanFlag = "bridge"
    mtu: int | None = None
    internal: bool = False
    host_address: str = ""
    ipv4: tuple[Subnet, ...] = ()
    ipv6: tuple[Subnet, ...] = ()

    @property
    def subnets(self) -> tuple[Subnet, ...]:
        return self.ipv4 + self.ipv6

    @property
    def mode(self) -> str:
        """The mode as a user reads it, for messages: ``macvlan bridge``, ``ipvlan l3/private``."""
        if self.kind == "macvlan":
            return f"macvlan {self.macvlan_mode}"
        return f"ipvlan {self.ipvlan_mode}/{self.ipvlan_flag}"


@dataclass(frozen=True)
class PoolData:
    """One entry of CreateNetwork's IPv4Data/IPv6Data, still as Docker's strings."""

    pool: str
    gateway: str = ""
    aux_addresses: Mapping[str, str] = field(default_factory=dict)


def parse_network(
    network_id: str,
    options: Mapping[str, Any],
    ipv4: Sequence[PoolData] = (),
    ipv6: Sequence[PoolData] = (),
    node_name: str = "",
) -> NetworkConfig:
    """CreateNetwork's options and IPAM data → a validated NetworkConfig, or InvalidOption.

    ``node_name`` is this host's name in address plans: ``host_address=@node`` stands for it."""
    generic = options.get(LABEL_GENERIC) or {}
    if not isinstance(generic, Mapping):
        raise InvalidOption(f"driver options ({LABEL_GENERIC}) must be a map of strings")
    opts = _string_options(generic)
    internal = options.get(LABEL_INTERNAL, False) is True

    kind = _kind(opts)
    parent = parse_parent(opts.get(OPT_PARENT, ""), opts.get(OPT_VLAN, ""), network_id)
    if parent.dummy:
        # Like Docker's drivers: with no parent, containers only reach each other.
        internal = True
    if kind == "macvlan" and (OPT_IPVLAN_MODE in opts or OPT_IPVLAN_FLAG in opts):
        raise InvalidOption(
            "options ipvlan_mode and ipvlan_flag are for ipvlan networks, but this network "
            "is macvlan (type=macvlan or macvlan_mode given)"
        )
    if kind == "ipvlan" and OPT_MACVLAN_MODE in opts:
        raise InvalidOption(
            "option macvlan_mode is for macvlan networks, but this network is ipvlan "
            "(type=ipvlan or an ipvlan option given)"
        )
    subnets4 = tuple(_subnet(d, 4) for d in ipv4)
    subnets6 = tuple(_subnet(d, 6) for d in ipv6)
    config = NetworkConfig(
        network_id=network_id,
        kind=kind,
        parent=parent,
        macvlan_mode=_choice(opts, OPT_MACVLAN_MODE, MACVLAN_MODES),
        ipvlan_mode=_choice(opts, OPT_IPVLAN_MODE, IPVLAN_MODES),
        ipvlan_flag=_choice(opts, OPT_IPVLAN_FLAG, IPVLAN_FLAGS),
        mtu=_mtu(opts.get(OPT_MTU, "")),
        internal=internal,
        host_address=_host_address(opts.get(OPT_HOST_ADDRESS, ""), node_name),
        ipv4=subnets4,
        ipv6=subnets6,
    )
    _check_host_address(config)
    return config


def _string_options(generic: Mapping[Any, Any]) -> dict[str, str]:
    opts: dict[str, str] = {}
    unknown = []
    for key, value in generic.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidOption(f"driver option {key!r} must have a string value, not {value!r}")
        if key in KNOWN_OPTIONS:
            opts[key] = value.strip()
        elif not key.startswith(DOCKER_OPTION_PREFIX):
            unknown.append(key)
    if unknown:
        raise InvalidOption(
            f"unknown driver option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(sorted(unknown))}; pymacvlan knows: {', '.join(KNOWN_OPTIONS)}"
        )
    return opts


def _kind(opts: Mapping[str, str]) -> Kind:
    explicit = opts.get(OPT_TYPE, "")
    if explicit:
        if explicit not in KINDS:
            raise InvalidOption(f"type {explicit!r} is not one of {', '.join(KINDS)}")
        return explicit
    # An ipvlan option on its own says what the user wants; macvlan is the default.
    if OPT_IPVLAN_MODE in opts or OPT_IPVLAN_FLAG in opts:
        return "ipvlan"
    return "macvlan"


def _choice(opts: Mapping[str, str], name: str, allowed: Sequence[str]) -> Any:
    value = opts.get(name, "") or allowed[0]
    if value not in allowed:
        raise InvalidOption(
            f"{name} {value!r} is not one of {', '.join(allowed)} (default {allowed[0]})"
        )
    return value


def _check_parent_name(name: str) -> None:
    try:
        check_link_name(name)
    except InvalidOption as exc:
        raise InvalidOption(f"parent: {exc}") from None


def parse_parent(name: str, vlan: str, network_id: str) -> Parent:
    """``-o parent`` (and ``-o vlan``) → Parent.

    ``eth0.10`` names VLAN 10 on eth0 (created if missing). ``-o parent=eth0 -o vlan=10`` says the
    same for parents whose ``name.id`` would not fit in 15 characters; the link then gets a
    short name of its own (driver.names.vlan_link_name).
    """
    if not name:
        if vlan:
            raise InvalidOption("option vlan needs a parent: add -o parent=<interface>")
        return Parent(name=dummy_link_name(network_id), dummy=True)
    if name == "lo":
        raise InvalidOption("the loopback interface lo cannot be a parent; name a LAN interface")
    if vlan:
        vlan_id = _vlan_id(vlan, f"vlan {vlan!r}")
        _check_parent_name(name)
        if "." in name and name.rsplit(".", 1)[1].isdigit():
            raise InvalidOption(
                f"parent {name!r} already names a VLAN; use either -o parent={name} or "
                f"-o parent={name.rsplit('.', 1)[0]} -o vlan={vlan_id}"
            )
        return Parent(name=vlan_link_name(name, vlan_id), vlan_base=name, vlan_id=vlan_id)
    _check_parent_name(name)
    base, dot, suffix = name.rpartition(".")
    if dot and base and suffix.isdigit():
        return Parent(name=name, vlan_base=base, vlan_id=_vlan_id(suffix, f"parent {name!r}"))
    return Parent(name=name)


def _vlan_id(text: str, what: str) -> int:
    try:
        vid = int(text, 10)
    except ValueError:
        raise InvalidOption(f"{what}: VLAN id {text!r} is not a number") from None
    if not MIN_VLAN <= vid <= MAX_VLAN:
        raise InvalidOption(
            f"{what}: VLAN id {vid} is out of range; 802.1q ids are {MIN_VLAN}-{MAX_VLAN}"
        )
    return vid


def _mtu(text: str) -> int | None:
    if not text:
        return None
    try:
        mtu = int(text, 10)
    except ValueError:
        raise InvalidOption(f"MTU {text!r} ({OPT_MTU}) is not a number") from None
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise InvalidOption(f"MTU {mtu} ({OPT_MTU}) is out of range {MIN_MTU}-{MAX_MTU}")
    return mtu


def _subnet(data: PoolData, family: int) -> Subnet:
    try:
        pool = ipaddress.ip_network(data.pool, strict=False)
        gateway = ipaddress.ip_interface(data.gateway).ip if data.gateway else None
        aux = {k: ipaddress.ip_interface(v).ip for k, v in data.aux_addresses.items()}
    except ValueError as exc:
        raise InvalidOption(f"invalid IPAM data for pool {data.pool!r}: {exc}") from None
    if pool.version != family:
        raise InvalidOption(f"pool {pool} is not an IPv{family} pool")
    return Subnet(pool=pool, gateway=gateway, aux_addresses=aux)


def _host_address(value: str, node_name: str) -> str:
    if value != HOST_ADDRESS_NODE:
        return value
    if not node_name:
        raise InvalidOption(
            "host_address=@node needs this plugin's node name (PYMACVLAN_NODE_NAME)"
        )
    return node_name


def _check_host_address(config: NetworkConfig) -> None:
    """The host's shim address must be an ``--aux-address``: that is what keeps IPAM from handing
    it to a container, on every host."""
    if not config.host_address:
        return
    if config.parent.dummy:
        raise InvalidOption(
            "option host_address needs a parent: a network without one has no LAN to share"
        )
    if config.kind == "macvlan" and config.macvlan_mode in ("private", "passthru"):
        raise InvalidOption(
            f"host_address needs macvlan_mode bridge or vepa: in mode {config.macvlan_mode} the "
            "host's shim link could not reach the containers"
        )
    if config.kind == "ipvlan" and config.ipvlan_flag == "private":
        raise InvalidOption(
            "host_address needs ipvlan_flag bridge or vepa: with private the host's shim link "
            "could not reach the containers"
        )
    aux = {k: str(v) for s in config.subnets for k, v in s.aux_addresses.items()}
    if config.host_address in aux or config.host_address in aux.values():
        return
    listed = ", ".join(f"{k}={v}" for k, v in sorted(aux.items())) or "none"
    raise InvalidOption(
        f"host_address {config.host_address!r} must name an --aux-address of this network "
        f"(by name or address) so that no container gets it; aux addresses: {listed}"
    )
