"""Default pools: the subnets handed out to networks created without --subnet.

Rule: default pools are data, a list of (base, size) pairs, never code paths. Each base is cut
into subnets of `size` bits; the first subnet that overlaps no pool in use on this host (same
address space and family, any LAN) is the answer. Docker's remote IPAM client relies on that:
when the answer overlaps a route of the host it keeps holding it and asks again, expecting the
next one.

The built-in list is Docker's own local-scope default (172.17-172.19/16, 172.20/14, 172.24/14,
172.28/14 as /16s, 192.168/16 as /20s) plus one IPv6 Unique Local /48 per node (RFC 4193: prefix
fd00::/8 then a 40-bit Global ID), cut into /64s. RFC 4193 §3.2.2 derives the Global ID from a
timestamp and an EUI-64 through SHA-1; we use the first 40 bits of SHA-256 of the node name
instead, so the prefix is stable across restarts and reinstalls of the same host and still
pseudo-random, which is the property §3.2.3 asks for.

Text syntax (the plugin's default-pools setting): `base/len:size[,base/len:size...]`, for example
`172.17.0.0/16:16,192.168.0.0/16:20,fd12:3456:789a::/48:64`. `size` may be left out (the base is
then one pool). The word `ula` (or `ula:<size>`) stands for this node's ULA /48.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from ipam.addresses import ASCII_SPACE, DECIMAL, Family, Subnet, parse_subnet
from ipam.errors import InvalidRequest, shown
from ipam.intervals import IntervalSet

ULA_KEYWORD = "ula"
ULA_PREFIXLEN = 48
ULA_POOL_SIZE = 64


@dataclass(frozen=True, slots=True)
class DefaultPool:
    """A base prefix cut into subnets of `size` bits."""

    base: Subnet
    size: int

    def __post_init__(self) -> None:
        if not self.base.prefixlen <= self.size <= self.base.family.bits:
            raise InvalidRequest(
                f"invalid default pool {self.base}:{self.size}: the size must be between "
                f"/{self.base.prefixlen} and /{self.base.family.bits}"
            )

    @property
    def family(self) -> Family:
        return self.base.family

    def __str__(self) -> str:
        return f"{self.base}:{self.size}"


def _pool(text: str, size: int) -> DefaultPool:
    return DefaultPool(parse_subnet(text), size)


DOCKER_DEFAULT_POOLS_V4: tuple[DefaultPool, ...] = (
    _pool("172.17.0.0/16", 16),
    _pool("172.18.0.0/16", 16),
    _pool("172.19.0.0/16", 16),
    _pool("172.20.0.0/14", 16),
    _pool("172.24.0.0/14", 16),
    _pool("172.28.0.0/14", 16),
    _pool("192.168.0.0/16", 20),
)


def ula_prefix(node_name: str) -> Subnet:
    """This node's IPv6 Unique Local /48: fd00::/8 + 40 bits of SHA-256(node name)."""
    global_id = int.from_bytes(hashlib.sha256(node_name.encode()).digest()[:5], "big")
    network = ((0xFD << 40) | global_id) << (128 - ULA_PREFIXLEN)
    return Subnet(Family.V6, network, ULA_PREFIXLEN)


def builtin_default_pools(node_name: str) -> tuple[DefaultPool, ...]:
    """Docker's IPv4 defaults plus this node's ULA /48 cut into /64s."""
    return (*DOCKER_DEFAULT_POOLS_V4, DefaultPool(ula_prefix(node_name), ULA_POOL_SIZE))


def parse_default_pools(text: str, *, node_name: str | None = None) -> tuple[DefaultPool, ...]:
    """Parse `base/len:size,...` (see the module docstring). `ula` needs `node_name`."""
    pools: list[DefaultPool] = []
    for raw_item in text.split(","):
        item = raw_item.strip(ASCII_SPACE)
        if not item:
            continue
        pools.append(_parse_item(item, node_name))
    return tuple(pools)


def _parse_item(item: str, node_name: str | None) -> DefaultPool:
    where = f"invalid default pool {shown(item)}"
    if item == ULA_KEYWORD or item.startswith(ULA_KEYWORD + ":"):
        if node_name is None:
            raise InvalidRequest(f"{where}: {ULA_KEYWORD!r} needs the node name")
        size_text = item[len(ULA_KEYWORD) + 1 :] if ":" in item else str(ULA_POOL_SIZE)
        return DefaultPool(ula_prefix(node_name), _parse_size(size_text, where))
    # The size follows the last ":" unless that ":" belongs to an IPv6 address (no "/" after it).
    base_text, sep, size_text = item.rpartition(":")
    if not sep or "/" in size_text:
        base = parse_subnet(item, what="default pool")
        return DefaultPool(base, base.prefixlen)
    base = parse_subnet(base_text, what="default pool")
    return DefaultPool(base, _parse_size(size_text, where))


def _parse_size(text: str, where: str) -> int:
    # ASCII digits only (str.isdigit() takes any script's), and short enough for int().
    if len(text) > 3 or not DECIMAL.fullmatch(text):
        raise InvalidRequest(f"{where}: the size after ':' must be a prefix length such as 24")
    return int(text)


def format_default_pools(pools: Iterable[DefaultPool]) -> str:
    return ",".join(str(pool) for pool in pools)


def choose_default_subnet(
    pools: Iterable[DefaultPool],
    family: Family,
    in_use: Iterable[Subnet],
    prefixlen: int | None = None,
) -> Subnet | None:
    """The first subnet of the default pools of `family` that overlaps nothing in `in_use`.

    `prefixlen` overrides each pool's size (Docker sends "0.0.0.0/24" to ask for a /24); pools
    whose base is smaller than that are skipped. The search jumps over each run of used space in
    one step, so it costs O(pools + subnets in use), not O(candidates) (a ULA /48 holds 65536
    /64s).
    """
    used = IntervalSet((s.first, s.last) for s in in_use if s.family is family)
    for pool in pools:
        if pool.family is not family:
            continue
        size = prefixlen if prefixlen is not None else pool.size
        if not pool.base.prefixlen <= size <= family.bits:
            continue
        block = 1 << (family.bits - size)
        candidate = pool.base.first
        while candidate + block - 1 <= pool.base.last:
            hit = used.next_present(candidate)
            if hit is None or hit > candidate + block - 1:
                return Subnet(family, candidate, size)
            # Skip past the used run, then up to the next block boundary (blocks are aligned
            # because the base is aligned to at least the block size).
            beyond = used.next_absent(hit)
            candidate = -(-beyond // block) * block
    return None
