"""What cluster mode stores in etcd: every key and value, built and parsed here and nowhere else.

    <prefix>/v1/blocks/<address space>/<lan>/<ipv4|ipv6>/<first address, fixed width>/<prefixlen>
        -> {"node": "node1", "instance": "5f0c...", "pool": "198.18.0.0/20", "claimed_at": 1.7e9}
    <prefix>/v1/nodes/<node>        (attached to an etcd lease the node's daemon keeps alive)
        -> {"node": "node1", "instance": "5f0c...", "started_at": 1.7e9}
    <prefix>/v1/owners/<instance>/<address space>/<lan>/<ipv4|ipv6>/<first address>/<prefixlen>
        -> ""   (the owner index: one key per block, written and deleted with it)

Rules:

* Blocks are keyed by LAN and family, not by subnet: a block is a piece of the LAN's address
  space, whichever pool carved it, so two hosts whose pools on one LAN overlap (a /16 here, a /20
  of it there) still never hold overlapping blocks.
* The first address is written fixed-width (IPv4 `198.018.000.064`, IPv6 fully expanded, lower
  case), so the lexicographic order of keys, which is etcd's, is the numeric order of blocks:
  every block that starts inside `[a, b]` is one key range. The claim transaction relies on it
  (see `ipam.cluster.claims`). Each family has its own directory so that IPv4 and IPv6 keys never
  interleave.
* A block belongs to a node *instance*: the node name is for people, the instance (random, kept
  in the host's state directory) tells two daemons apart that were given the same node name,
  such as cloned machines, or a host whose state directory was reset.
* The owner index lists an instance's blocks under one prefix, so that a host reads its own
  blocks with one small range read, whatever the size of the cluster (Calico keeps per-host
  affinity keys for the same reason). It is an index, not the truth: the block key says who
  owns a block, and an index key whose block is gone or another's is stale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ipam.addresses import Family, Subnet, format_address
from ipam.errors import ClusterError

LAYOUT_VERSION = "v1"
_FAMILY_DIR = {Family.V4: "ipv4", Family.V6: "ipv6"}
_DIR_FAMILY = {name: family for family, name in _FAMILY_DIR.items()}


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    """Where blocks live: one address space, one LAN, one family (an address has one owner)."""

    address_space: str
    lan: str
    family: Family

    def __str__(self) -> str:
        return f"{self.address_space}/{self.lan}/{self.family.label}"


@dataclass(frozen=True, slots=True)
class BlockOwner:
    """The value of a block key: who claimed it, for which pool, when."""

    node: str
    instance: str
    pool: str
    claimed_at: float

    def encode(self) -> bytes:
        return json.dumps(
            {
                "node": self.node,
                "instance": self.instance,
                "pool": self.pool,
                "claimed_at": self.claimed_at,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def decode(cls, raw: bytes, key: str) -> BlockOwner:
        try:
            data = json.loads(raw)
            return cls(
                str(data["node"]),
                str(data["instance"]),
                str(data.get("pool", "")),
                float(data.get("claimed_at", 0.0)),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise ClusterError(f"unreadable block record at etcd key {key!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """The value of a node's registration key."""

    node: str
    instance: str
    started_at: float

    def encode(self) -> bytes:
        return json.dumps(
            {"node": self.node, "instance": self.instance, "started_at": self.started_at},
            sort_keys=True,
        ).encode()

    @classmethod
    def decode(cls, raw: bytes, key: str) -> NodeRecord:
        try:
            data = json.loads(raw)
            return cls(str(data["node"]), str(data["instance"]), float(data["started_at"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise ClusterError(f"unreadable node record at etcd key {key!r}: {exc}") from None


def prefix_end(key: str) -> str:
    """etcd's range end for "every key that starts with `key`": the key with its last byte + 1.

    Keys here are ASCII (checked where the prefix is configured, and node, LAN and address
    names are ASCII by their own rules), so a character is a byte.
    """
    if not key:
        raise ValueError("an empty key has no prefix end")
    return key[:-1] + chr(ord(key[-1]) + 1)


def padded(family: Family, value: int) -> str:
    """An address written fixed-width, so that text order is numeric order."""
    if family is Family.V4:
        return ".".join(f"{(value >> shift) & 0xFF:03d}" for shift in (24, 16, 8, 0))
    return ":".join(f"{(value >> shift) & 0xFFFF:04x}" for shift in range(112, -1, -16))


def unpadded(family: Family, text: str) -> int:
    """Inverse of `padded`; ValueError when `text` is not one."""
    if family is Family.V4:
        parts = text.split(".")
        if len(parts) != 4 or any(len(p) != 3 or not p.isdigit() or int(p) > 255 for p in parts):
            raise ValueError(f"not a padded IPv4 address: {text!r}")
        octets = [int(p) for p in parts]
        return (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]
    groups = text.split(":")
    if len(groups) != 8 or any(len(g) != 4 for g in groups):
        raise ValueError(f"not a padded IPv6 address: {text!r}")
    value = 0
    for group in groups:
        value = (value << 16) | int(group, 16)
    return value


class Layout:
    """The keys under one configured prefix (default `/pymacvlan`)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.rstrip("/")
        self.root = f"{self.prefix}/{LAYOUT_VERSION}/"

    # ----------------------------------------------------------------- blocks

    @property
    def blocks_prefix(self) -> str:
        """Every block of every LAN."""
        return f"{self.root}blocks/"

    def scope_prefix(self, scope: Scope) -> str:
        """Every block of one LAN and family."""
        return f"{self.blocks_prefix}{scope.address_space}/{scope.lan}/{_FAMILY_DIR[scope.family]}/"

    def block_key(self, scope: Scope, block: Subnet) -> str:
        return f"{self.scope_prefix(scope)}{padded(block.family, block.first)}/{block.prefixlen}"

    def parse_block_key(self, key: str) -> tuple[Scope, Subnet] | None:
        """The scope and block of a block key; None for anything else (foreign keys under the
        prefix are ignored, never misread)."""
        if not key.startswith(self.blocks_prefix):
            return None
        return _parse_block_path(key[len(self.blocks_prefix) :])

    def starting_within(self, scope: Scope, first: int, last: int) -> tuple[str, str]:
        """The key range `[key, range_end)` of every block that starts in `[first, last]`."""
        base = self.scope_prefix(scope)
        start = base + padded(scope.family, first)
        if last >= (1 << scope.family.bits) - 1:
            return start, prefix_end(base)
        return start, base + padded(scope.family, last + 1)

    def starting_at_or_before(self, scope: Scope, value: int) -> tuple[str, str]:
        """The key range of every block that starts at or before `value` (read it backwards,
        limit 1, to find the only block that can contain `value`: blocks never overlap)."""
        base = self.scope_prefix(scope)
        # "<padded value>/<len>" keys sort before "<padded value>0" ('/' < '0').
        return base, base + padded(scope.family, value) + "0"

    # ------------------------------------------------------------ owner index

    def owner_prefix(self, instance: str) -> str:
        """Every owner-index key of one node instance."""
        return f"{self.root}owners/{instance}/"

    def owner_key(self, instance: str, scope: Scope, block: Subnet) -> str:
        return self.owner_prefix(instance) + self.block_key(scope, block)[len(self.blocks_prefix) :]

    def parse_owner_key(self, instance: str, key: str) -> tuple[Scope, Subnet] | None:
        """The scope and block an owner-index key of `instance` names; None for anything else."""
        prefix = self.owner_prefix(instance)
        if not key.startswith(prefix):
            return None
        return _parse_block_path(key[len(prefix) :])

    # ------------------------------------------------------------------ nodes

    @property
    def nodes_prefix(self) -> str:
        return f"{self.root}nodes/"

    def node_key(self, node: str) -> str:
        return f"{self.nodes_prefix}{node}"


def _parse_block_path(path: str) -> tuple[Scope, Subnet] | None:
    """`<address space>/<lan>/<family dir>/<padded first>/<prefixlen>`, checked."""
    parts = path.split("/")
    if len(parts) != 5 or parts[2] not in _DIR_FAMILY:
        return None
    space, lan, family_dir, first_text, length_text = parts
    family = _DIR_FAMILY[family_dir]
    try:
        first = unpadded(family, first_text)
        prefixlen = int(length_text)
    except ValueError:
        return None
    if not 0 <= prefixlen <= family.bits or first & ((1 << (family.bits - prefixlen)) - 1):
        return None
    return Scope(space, lan, family), Subnet(family, first, prefixlen)


def describe_block(block: Subnet) -> str:
    """A block as people write it: `198.18.0.64/26`, a single address without its /32."""
    if block.prefixlen == block.family.bits:
        return format_address(block.family, block.first)
    return str(block)
