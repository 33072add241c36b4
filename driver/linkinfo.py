"""What the link layer reports about a link, and the kernel's rules on names and values.

Pure: no netlink, no disk. It lives apart from the link layer (driver/netlink/) so that code which
only reads link facts (the driver's planning, a fake link layer in tests) never imports pyroute2.

The checks here are the kernel's own rules, applied before a request is sent, so that the user reads
"interface name X is longer than 15 characters" instead of "ERANGE: Attribute failed policy
validation".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from driver.errors import InvalidOption, shown, shown_character

MacvlanMode = Literal["bridge", "private", "vepa", "passthru"]
IpvlanMode = Literal["l2", "l3", "l3s"]
IpvlanFlag = Literal["bridge", "private", "vepa"]

MACVLAN_MODES: Final[tuple[MacvlanMode, ...]] = ("bridge", "private", "vepa", "passthru")
IPVLAN_MODES: Final[tuple[IpvlanMode, ...]] = ("l2", "l3", "l3s")
IPVLAN_FLAGS: Final[tuple[IpvlanFlag, ...]] = ("bridge", "private", "vepa")

IFNAMSIZ: Final = 15  # include/uapi/linux/if.h IFNAMSIZ (16) minus the terminating NUL
IFALIASZ: Final = 255  # include/uapi/linux/if.h IFALIASZ (256) minus the terminating NUL
MIN_MTU: Final = 68  # ETH_MIN_MTU: the IPv4 minimum (RFC 791); the kernel refuses less on Ethernet
MAX_MTU: Final = 65535  # ETH_MAX_MTU
MIN_VLAN: Final = 1  # IEEE 802.1Q: VID 0 means "priority tag only", 4095 is reserved
MAX_VLAN: Final = 4094

# Six groups of two hex digits, all separated by ':' or all by '-'.
_MAC: Final = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}")

# Kinds whose IFLA_LINK names the device they are stacked on ("parent", "lower device"). A veth's
# IFLA_LINK is its peer instead, so it is not a parent-child relation.
STACKED_KINDS: Final = frozenset({"macvlan", "macvtap", "ipvlan", "ipvtap", "vlan"})


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """One link as the kernel reports it, in this network namespace.

    ``parent_index`` is IFLA_LINK (the lower device of a macvlan/ipvlan/VLAN link; the peer of a
    veth). When ``parent_netnsid`` is set the parent lives in another namespace (a macvlan moved
    into a container) and ``parent_index`` is an index *there*, so ``parent_name`` is None.

    ``wireless`` comes from sysfs, not netlink: ``/sys/class/net`` shows the namespace of whoever
    mounted /sys, which is the daemon's own namespace in production (a host-network plugin) but not
    a test's throwaway namespace. The link layer only trusts the sysfs entry when its ifindex and
    MAC address match the link; otherwise ``wireless`` is None, meaning "unknown".
    """

    index: int
    name: str
    kind: (
        str | None
    )  # IFLA_INFO_KIND: "macvlan", "ipvlan", "vlan", "dummy", "veth", ...; None for a NIC
    parent_index: int | None
    parent_name: str | None
    parent_netnsid: int | None
    master_index: int | None  # IFLA_MASTER: the bridge/bond/VRF this link is a port of
    mtu: int
    up: bool  # administratively up (IFF_UP)
    oper_state: str  # RFC 2863 operational state, lower case: "up", "down", "unknown", ...
    carrier: bool
    mac: str | None
    alias: str | None  # IFLA_IFALIAS; the plugin marks the links it creates with it
    ethernet: bool  # ARPHRD_ETHER: the only link type macvlan, ipvlan and VLAN links stack on
    loopback: bool
    wireless: bool | None
    vlan_id: int | None = None
    macvlan_mode: MacvlanMode | None = None
    ipvlan_mode: IpvlanMode | None = None
    ipvlan_flag: IpvlanFlag | None = None


def check_link_name(name: str) -> None:
    """The kernel's dev_valid_name(), and what the kernel would read differently than we wrote.

    Every interface name we accept (parent, VLAN base) or derive (endpoint, dummy, VLAN, shim
    links) passes here, so that the name the kernel acts on is the name we checked:

    * empty, ``.``, ``..``, more than IFNAMSIZ bytes, ``/``, ``:`` and whitespace are what
      dev_valid_name() refuses. Its isspace() is the kernel's Latin-1 table, which includes byte
      0xA0, a byte of many UTF-8 characters (``à``, Arabic-Indic zero): those are refused too;
    * a NUL byte ends the name for the kernel (``eth0\\0x`` is ``eth0``) and would slip past every
      check that compares names, so control and other non-printable characters are refused;
    * ``%`` makes a name a template (``eth%d``) that the kernel fills in itself.
    """
    if not name:
        raise InvalidOption("interface name is empty")
    if name in (".", ".."):
        raise InvalidOption(f"interface name {name!r} is not valid: a name may not be '.' or '..'")
    for char in name:
        why = _why_not_in_a_name(char)
        if why:
            raise InvalidOption(
                f"interface name {shown(name)} is not valid: character {shown_character(char)} "
                f"{why}"
            )
    size = len(name.encode())
    if size > IFNAMSIZ:
        # Every character is a fine one by now: the name is shown as it is, cut if huge.
        shown_name = name if len(name) <= 64 else f"{name[:64]}... ({len(name)} characters)"
        unit = "characters" if size == len(name) else "bytes (in UTF-8)"
        raise InvalidOption(f"interface name {shown_name} is longer than {IFNAMSIZ} {unit}")


def _why_not_in_a_name(char: str) -> str:
    if char in "/:":
        return "is not allowed in interface names"
    if char == "%":
        return "is not allowed: the kernel reads a name with '%' as a template (eth%d)"
    if char.isspace() or not char.isprintable():
        return "is not allowed: interface names have no spaces or control characters"
    if 0xA0 in char.encode():
        return "is not allowed: its UTF-8 bytes include 0xA0, which the kernel reads as a space"
    return ""


def valid_link_name(name: str) -> bool:
    """Whether ``name`` passes check_link_name. A stored name that does not (state written before
    the checks were this strict) is neither looked up nor deleted: the kernel never had a link of
    that name, or (a NUL in it) has it under the part before the NUL, which is not ours to guess."""
    try:
        check_link_name(name)
    except InvalidOption:
        return False
    return True


def check_mtu(mtu: int) -> None:
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise InvalidOption(
            f"MTU {mtu} is out of range: it must be between {MIN_MTU} and {MAX_MTU}"
        )


def check_vlan_id(vlan_id: int) -> None:
    if not MIN_VLAN <= vlan_id <= MAX_VLAN:
        raise InvalidOption(
            f"VLAN id {vlan_id} is out of range: it must be between {MIN_VLAN} and {MAX_VLAN} "
            "(0 and 4095 are reserved by 802.1Q)"
        )


def check_alias(alias: str) -> None:
    if len(alias.encode()) > IFALIASZ:
        raise InvalidOption(f"interface alias {shown(alias)} is longer than {IFALIASZ} bytes")


def normalize_mac(mac: str) -> str:
    """``02-42-AC-11-00-02`` → ``02:42:ac:11:00:02``; refuses what a macvlan cannot have.

    Six groups of two ASCII hex digits, separated all by ``:`` or all by ``-``: Python's
    ``int(..., 16)`` alone would also take ``+2``, `` 2`` and Arabic-Indic digits. The kernel
    answers EADDRNOTAVAIL for a multicast or all-zero address ("Cannot assign requested
    address"), which does not say which address or why.
    """
    if not _MAC.fullmatch(mac):
        raise InvalidOption(
            f"MAC address {shown(mac)} is not of the form 02:42:c0:00:02:0a (six pairs of hex "
            "digits separated by ':')"
        )
    octets = [int(p, 16) for p in re.split("[:-]", mac)]
    if octets[0] & 1:
        raise InvalidOption(f"MAC address {mac} is a multicast address; a link needs a unicast one")
    if not any(octets):
        raise InvalidOption(f"MAC address {mac} is all zeros")
    return ":".join(f"{o:02x}" for o in octets)
