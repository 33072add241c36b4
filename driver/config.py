"""Network configuration: the ``-o`` options and IPAM data of CreateNetwork, parsed and validated.

Pure: no netlink, no disk. Option names are Docker's built-in spellings, so a user can swap
``-d macvlan`` for ``-d pymacvlan`` and keep the rest of the command. Anything we do not know is
refused with the list of what we know, because a typo silently ignored (``-o macvlan_mod=private``)
puts containers on the LAN in a mode the user did not ask for.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from driver.errors import InvalidOption, shown
from driver.ids import check_id
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

# Numbers are written one way: ASCII digits, no sign, no "_", no leading zero (int() would take
# "1_500", "+1500" and Arabic-Indic digits). A parent's VLAN suffix may have leading zeros:
# vconfig's RAW_PLUS_VID names (eth0.0010) are names users have.
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]*")
_VLAN_SUFFIX: Final = re.compile(r"[0-9]+")
_MAX_DIGITS: Final = 18
# Option values lose the spaces a command line may leave around them; only ASCII ones, so that
# "eth0\u2028" is refused as a name rather than read as "eth0".
_ASCII_SPACE: Final = " \t\n\r\f\v"
_LISTED: Final = 5  # names quoted in a refusal that lists some (unknown options, aux addresses)
_LISTED_CHARACTERS: Final = 40

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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
    check_id("NetworkID", network_id)
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
            raise InvalidOption(
                f"driver option {shown(key)} must have a string value, not {shown(value)}"
            )
        if key in KNOWN_OPTIONS:
            opts[key] = value.strip(_ASCII_SPACE)
        elif not key.startswith(DOCKER_OPTION_PREFIX):
            unknown.append(key)
    if unknown:
        raise InvalidOption(
            f"unknown driver option{'s' if len(unknown) > 1 else ''} "
            f"{_listed(sorted(unknown))}; pymacvlan knows: {', '.join(KNOWN_OPTIONS)}"
        )
    return opts


def _listed(names: Sequence[str]) -> str:
    """A few names, quoted and cut; the count of the rest."""
    shownames = ", ".join(shown(n, _LISTED_CHARACTERS) for n in names[:_LISTED])
    more = len(names) - _LISTED
    return f"{shownames} and {more} more" if more > 0 else shownames


def _kind(opts: Mapping[str, str]) -> Kind:
    explicit = opts.get(OPT_TYPE, "")
    if explicit:
        if explicit not in KINDS:
            raise InvalidOption(f"type {shown(explicit)} is not one of {', '.join(KINDS)}")
        return explicit
    # An ipvlan option on its own says what the user wants; macvlan is the default.
    if OPT_IPVLAN_MODE in opts or OPT_IPVLAN_FLAG in opts:
        return "ipvlan"
    return "macvlan"


def _choice(opts: Mapping[str, str], name: str, allowed: Sequence[str]) -> Any:
    value = opts.get(name, "") or allowed[0]
    if value not in allowed:
        raise InvalidOption(
            f"{name} {shown(value)} is not one of {', '.join(allowed)} (default {allowed[0]})"
        )
    return value


def _check_parent_name(name: str) -> None:
    try:
        check_link_name(name)
    except InvalidOption as exc:
        raise InvalidOption(f"parent: {exc}") from None


def _derived_name(name: str) -> str:
    """A name we made from the request: checked like any other, before the kernel sees it."""
    check_link_name(name)
    return name


def parse_parent(name: str, vlan: str, network_id: str) -> Parent:
    """``-o parent`` (and ``-o vlan``) → Parent.

    ``eth0.10`` names VLAN 10 on eth0 (created if missing). ``-o parent=eth0 -o vlan=10`` says the
    same for parents whose ``name.id`` would not fit in 15 characters; the link then gets a
    short name of its own (driver.names.vlan_link_name).
    """
    if not name:
        if vlan:
            raise InvalidOption("option vlan needs a parent: add -o parent=<interface>")
        return Parent(name=_derived_name(dummy_link_name(network_id)), dummy=True)
    if name == "lo":
        raise InvalidOption("the loopback interface lo cannot be a parent; name a LAN interface")
    _check_parent_name(name)
    base, dot, suffix = name.rpartition(".")
    names_vlan = bool(dot and base and _VLAN_SUFFIX.fullmatch(suffix))
    if vlan:
        vlan_id = _vlan_id(vlan, "vlan", _DECIMAL)
        if names_vlan:
            raise InvalidOption(
                f"parent {name!r} already names a VLAN; use either -o parent={name} or "
                f"-o parent={base} -o vlan={vlan_id}"
            )
        link = _derived_name(vlan_link_name(name, vlan_id))
        return Parent(name=link, vlan_base=name, vlan_id=vlan_id)
    if names_vlan:
        return Parent(name=name, vlan_base=base, vlan_id=_vlan_id(suffix, f"parent {name}"))
    return Parent(name=name)


def _number(text: str, form: re.Pattern[str]) -> int | None:
    """The number ``text`` spells in ``form``, or None. A long run of digits is just too large a
    number (int() would refuse more than 4300 digits, and need long for fewer)."""
    if not form.fullmatch(text):
        return None
    return int(text) if len(text) <= _MAX_DIGITS else 10**_MAX_DIGITS


def _digits(text: str) -> str:
    """A number that matched its form, for a message: digits only, cut if there are many."""
    return text if len(text) <= _MAX_DIGITS else f"{text[:_MAX_DIGITS]}... ({len(text)} digits)"


def _vlan_id(text: str, what: str, form: re.Pattern[str] = _VLAN_SUFFIX) -> int:
    vid = _number(text, form)
    if vid is None:
        raise InvalidOption(
            f"{what}: VLAN id {shown(text)} is not a number; write it in ASCII digits, "
            f"{MIN_VLAN}-{MAX_VLAN}"
        )
    if not MIN_VLAN <= vid <= MAX_VLAN:
        raise InvalidOption(
            f"{what}: VLAN id {_digits(text)} is out of range; 802.1q ids are {MIN_VLAN}-{MAX_VLAN}"
        )
    return vid


def _mtu(text: str) -> int | None:
    if not text:
        return None
    mtu = _number(text, _DECIMAL)
    if mtu is None:
        raise InvalidOption(
            f"MTU {shown(text)} ({OPT_MTU}) is not a number; write it in ASCII digits, such as 1500"
        )
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise InvalidOption(f"MTU {_digits(text)} ({OPT_MTU}) is out of range {MIN_MTU}-{MAX_MTU}")
    return mtu


def _subnet(data: PoolData, family: int) -> Subnet:
    """One pool of Docker's IPAM data: Docker writes every value as ``address/prefix`` (aux
    addresses and gateways too), in ASCII, without a zone index."""
    where = f"invalid IPAM data for pool {shown(data.pool)}"
    address, prefix = parse_ip(data.pool, where, "pool")
    if prefix is None:
        raise InvalidOption(f"{where}: the pool has no prefix length (/24, /64)")
    pool = ipaddress.ip_network((address, prefix), strict=False)
    gateway = parse_ip(data.gateway, where, "gateway")[0] if data.gateway else None
    aux = {
        k: parse_ip(v, where, f"aux address {shown(k)}")[0] for k, v in data.aux_addresses.items()
    }
    if pool.version != family:
        raise InvalidOption(f"pool {pool} is not an IPv{family} pool")
    return Subnet(pool=pool, gateway=gateway, aux_addresses=aux)


def parse_ip(text: str, where: str, what: str) -> tuple[IPAddress, int | None]:
    """``192.0.2.1/24`` or ``192.0.2.1`` → the address and the prefix length (or None), strictly:
    ASCII, no zone index, a prefix length in plain digits. ``where`` starts the message."""
    if "%" in text:
        raise InvalidOption(f"{where}: {what} {shown(text)} has a zone index (%...), not allowed")
    address_text, slash, prefix_text = text.partition("/")
    try:
        address = ipaddress.ip_address(address_text)
    except ValueError:
        raise InvalidOption(f"{where}: {what} {shown(text)} is not an IP address") from None
    if not slash:
        return address, None
    bits = address.max_prefixlen
    prefix = _number(prefix_text, _DECIMAL)
    if prefix is None or prefix > bits:
        raise InvalidOption(
            f"{where}: {what} {shown(text)} has no valid prefix length (0-{bits}, ASCII digits)"
        )
    return address, prefix


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
    listed = _listed([f"{k}={v}" for k, v in sorted(aux.items())]) or "none"
    raise InvalidOption(
        f"host_address {shown(config.host_address)} must name an --aux-address of this network "
        f"(by name or address) so that no container gets it; aux addresses: {listed}"
    )
