"""IP addresses, subnets and ranges as integers, and the parsing of what users type.

Rule: everything past this module works on plain ints (an IPv4 or IPv6 address is its 32- or
128-bit number) plus a family; text is parsed once here, strictly, and formatted once here.
A subnet with host bits set is refused with its canonical form in the message, because silently
masking would give the user a different network than the one they typed. Strictly means one
spelling: ASCII digits only, a prefix length in plain digits (not ``/024``, ``/+24`` nor a
netmask), no zone index (``2001:db8::%eth0/64`` names no network), and only ASCII spaces stripped
from around a value. Values are quoted in messages through `ipam.errors.shown`, never whole.

Accepted range syntax (for `range.<node>=`, `exclude=`): a CIDR (`192.0.2.64/26`), a dash range
(`192.0.2.10-192.0.2.49`) or a single address (`192.0.2.7`). A dash range whose ends are of
different families, or whose start is after its end, is refused.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from ipam.errors import InvalidRequest, shown
from ipam.intervals import IntervalSet

# What is stripped from around a value a user typed (str.strip() alone would also take
# U+2028, U+00A0 and their kin).
ASCII_SPACE: Final = " \t\n\r\f\v"
# A number as a user writes it: ASCII digits, no sign, no "_", no leading zero.
DECIMAL: Final = re.compile(r"0|[1-9][0-9]*")


class Family(IntEnum):
    """IP version; the value is the version number."""

    V4 = 4
    V6 = 6

    @property
    def bits(self) -> int:
        return 32 if self is Family.V4 else 128

    @property
    def label(self) -> str:
        return "IPv4" if self is Family.V4 else "IPv6"


_AF = {Family.V4: socket.AF_INET, Family.V6: socket.AF_INET6}


def format_address(family: Family, value: int) -> str:
    """Canonical text of an address (RFC 5952 compressed form for IPv6)."""
    if family is Family.V4:
        return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    # ipaddress, not inet_ntop: libc writes "::1.2.3.4" for IPv4-compatible addresses.
    return str(ipaddress.IPv6Address(value))


def address_to_int(family: Family, text: str) -> int:
    """Fast parse of canonical text written by this package (the store's hot path at start-up).

    `inet_pton` is an order of magnitude faster than `ipaddress` and accepts everything
    `format_address` produces.
    """
    return int.from_bytes(socket.inet_pton(_AF[family], text), "big")


def parse_address(text: str, *, what: str = "address") -> tuple[Family, int]:
    """Parse a user-supplied address; refuse anything that is not one plain address."""
    ip = _ip(text.strip(ASCII_SPACE), f"invalid {what} {shown(text)}")
    family = Family.V4 if ip.version == 4 else Family.V6
    return family, int(ip)


def _ip(text: str, where: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if "%" in text:
        raise InvalidRequest(f"{where}: a zone index (%...) is not allowed here")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidRequest(f"{where}: not an IPv4 or IPv6 address") from None


@dataclass(frozen=True, slots=True, order=True)
class Subnet:
    """A canonical CIDR prefix: `network` has no host bits set."""

    family: Family
    network: int
    prefixlen: int

    @property
    def host_bits(self) -> int:
        return self.family.bits - self.prefixlen

    @property
    def first(self) -> int:
        return self.network

    @property
    def last(self) -> int:
        return self.network | ((1 << self.host_bits) - 1)

    @property
    def size(self) -> int:
        return 1 << self.host_bits

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and self.first <= value <= self.last

    def contains_range(self, r: AddressRange) -> bool:
        return r.family is self.family and self.first <= r.first and r.last <= self.last

    def overlaps(self, other: Subnet) -> bool:
        return self.family is other.family and self.first <= other.last and other.first <= self.last

    def as_range(self) -> AddressRange:
        return AddressRange(self.family, self.first, self.last)

    def reserved_addresses(self) -> tuple[int, ...]:
        """Addresses of the subnet that are never handed out, automatically or on request.

        IPv4: the network address ("this network", RFC 1122 §3.2.1.3) and the directed broadcast
        (RFC 919, RFC 922), except in /31 (RFC 3021: both addresses are hosts on a point-to-point
        link) and /32 (a single host). IPv6: the Subnet-Router anycast address, the all-zero
        interface identifier (RFC 4291 §2.6.1), except in /127 (RFC 6164 §5 makes both addresses
        usable on point-to-point links) and /128. IPv6 has no broadcast.
        """
        if self.family is Family.V4:
            if self.prefixlen >= 31:
                return ()
            return (self.first, self.last)
        if self.prefixlen >= 127:
            return ()
        return (self.first,)

    def usable_span(self) -> AddressRange:
        """From the first to the last usable address (reserved ones sit only at the ends)."""
        reserved = self.reserved_addresses()
        first = self.first + 1 if self.first in reserved else self.first
        last = self.last - 1 if self.last in reserved else self.last
        return AddressRange(self.family, first, last)

    def describe_reserved(self, value: int) -> str | None:
        """Why `value` is reserved in this subnet, or None when it is not."""
        if value not in self.reserved_addresses():
            return None
        if self.family is Family.V6:
            return "the Subnet-Router anycast address"
        return "the network address" if value == self.first else "the broadcast address"

    def __str__(self) -> str:
        return f"{format_address(self.family, self.network)}/{self.prefixlen}"


def parse_subnet(text: str, *, what: str = "subnet") -> Subnet:
    """Parse a CIDR; refuse host bits (naming the canonical form) and bare addresses."""
    where = f"invalid {what} {shown(text)}"
    candidate = text.strip(ASCII_SPACE)
    if "%" in candidate:
        raise InvalidRequest(f"{where}: a zone index (%...) is not allowed here")
    if "/" not in candidate:
        raise InvalidRequest(f"{where}: expected CIDR notation such as 192.0.2.0/24")
    address_part, _, prefix_part = candidate.partition("/")
    given = _ip(address_part, where)
    bits = given.max_prefixlen
    # The length first: int() of a megabyte of digits is slow, and refused beyond 4300 digits.
    if len(prefix_part) > 3 or not DECIMAL.fullmatch(prefix_part) or int(prefix_part) > bits:
        raise InvalidRequest(
            f"{where}: the prefix length must be a number from 0 to {bits}, in plain digits"
        )
    loose = ipaddress.ip_network((given, int(prefix_part)), strict=False)
    if int(given) != int(loose.network_address):
        raise InvalidRequest(f"{where}: host bits set; did you mean {loose.with_prefixlen}?")
    family = Family.V4 if loose.version == 4 else Family.V6
    return Subnet(family, int(loose.network_address), loose.prefixlen)


@dataclass(frozen=True, slots=True, order=True)
class AddressRange:
    """A closed range `[first, last]` of one family."""

    family: Family
    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def overlaps(self, other: AddressRange) -> bool:
        return self.family is other.family and self.first <= other.last and other.first <= self.last

    def as_subnet(self) -> Subnet | None:
        """The prefix this range is exactly, if it is one."""
        size = self.size
        if size & (size - 1) or self.first % size:
            return None
        return Subnet(self.family, self.first, self.family.bits - (size.bit_length() - 1))

    def __str__(self) -> str:
        if self.first == self.last:
            return format_address(self.family, self.first)
        subnet = self.as_subnet()
        if subnet is not None and subnet.prefixlen < self.family.bits:
            return str(subnet)
        return f"{format_address(self.family, self.first)}-{format_address(self.family, self.last)}"


def parse_range(text: str, *, what: str = "range") -> AddressRange:
    """Parse a CIDR, a dash range or a single address."""
    candidate = text.strip(ASCII_SPACE)
    if not candidate:
        raise InvalidRequest(f"invalid {what} {shown(text)}: empty")
    if "/" in candidate:
        return parse_subnet(candidate, what=what).as_range()
    if "-" in candidate:
        left, _, right = candidate.partition("-")
        family_a, first = parse_address(left, what=f"{what} start")
        family_b, last = parse_address(right, what=f"{what} end")
        if family_a is not family_b:
            raise InvalidRequest(
                f"invalid {what} {shown(text)}: its ends are of different IP families"
            )
        if first > last:
            raise InvalidRequest(f"invalid {what} {shown(text)}: its start is after its end")
        return AddressRange(family_a, first, last)
    family, value = parse_address(candidate, what=what)
    return AddressRange(family, value, value)


def parse_range_list(text: str, *, what: str) -> tuple[AddressRange, ...]:
    """Parse `r[,r...]` (the value of `range.<node>=` and `exclude=`)."""
    items = [item for item in (part.strip(ASCII_SPACE) for part in text.split(",")) if item]
    if not items:
        raise InvalidRequest(f"invalid {what} {shown(text)}: expected at least one range")
    return tuple(parse_range(item, what=what) for item in items)


def ranges_to_set(ranges: tuple[AddressRange, ...] | list[AddressRange]) -> IntervalSet:
    return IntervalSet((r.first, r.last) for r in ranges)


def set_to_ranges(family: Family, values: IntervalSet) -> tuple[AddressRange, ...]:
    return tuple(AddressRange(family, lo, hi) for lo, hi in values.intervals())


def describe_ranges(ranges: tuple[AddressRange, ...] | list[AddressRange]) -> str:
    return ", ".join(str(r) for r in ranges)
