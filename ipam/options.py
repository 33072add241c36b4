"""RequestPool parsing: address space, --subnet, --ip-range and the --ipam-opt map -> PoolSpec.

Rules:

* Unknown options are refused with the list of known ones (a typo must not silently become an
  unplanned network). Keys under `com.docker.network.` belong to Docker (swarm adds
  `com.docker.network.ipam.serial`, for one) and are ignored.
* The --ipam-opt map is shared by the IPv4 and IPv6 pools of one network, so each pool takes the
  range entries of its own family and ignores the others.
* A pool's identity (its PoolID) is built from what changes its behaviour and nothing else:
  address space, LAN, subnet, ip-range and a short hash of the canonical rest of the options of
  its family. Identical requests therefore get identical PoolIDs, which is how the service
  reference-counts them.
* `block_size` (IPv4) and `block_size6` (IPv6) set the size of the blocks a host claims in
  cluster mode (`ipam.cluster`). A block must fit inside the range blocks are carved from (the
  ip-range, else the subnet) and may not be combined with an address plan of the same family:
  a plan decides the host's addresses itself, so a block size there would be silently ignored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ipam.addresses import (
    ASCII_SPACE,
    DECIMAL,
    AddressRange,
    Family,
    Subnet,
    describe_ranges,
    parse_range_list,
    parse_subnet,
    ranges_to_set,
    set_to_ranges,
)
from ipam.errors import InvalidRequest, shown
from ipam.plan import NodePlan, plan_from_ranges, split_among_nodes

LOCAL_ADDRESS_SPACE = "local"
GLOBAL_ADDRESS_SPACE = "global"
ADDRESS_SPACES = (LOCAL_ADDRESS_SPACE, GLOBAL_ADDRESS_SPACE)

OPT_LAN = "lan"  # name of the LAN; networks with the same subnet and lan share one table
OPT_NODES = "nodes"  # split the span equally among these nodes, in this order
OPT_RANGE_PREFIX = "range."  # range.<node>=<r>[,<r>...]: explicit ranges of one node
OPT_EXCLUDE = "exclude"  # never hand these out automatically
OPT_QUARANTINE = "quarantine"  # seconds a released address rests before automatic reuse
OPT_BLOCK_SIZE = "block_size"  # cluster mode: prefix length of the IPv4 blocks a host claims
OPT_BLOCK_SIZE6 = "block_size6"  # cluster mode: the same for IPv6
OPT_PROBE = "probe"  # on | dynamic | off: ask the LAN before handing an address out
OPT_PROBE_WAIT = "probe_wait"  # seconds to wait for an answer to a probe
OPT_LAN_RECHECK = "lan_recheck"  # seconds an address found in use on the LAN is skipped
OPT_DHCP = "dhcp"  # on | off: IPv4 addresses come from the LAN's DHCP server
KNOWN_OPTIONS = (
    OPT_LAN,
    OPT_NODES,
    f"{OPT_RANGE_PREFIX}<node>",
    OPT_EXCLUDE,
    OPT_QUARANTINE,
    OPT_BLOCK_SIZE,
    OPT_BLOCK_SIZE6,
    OPT_PROBE,
    OPT_PROBE_WAIT,
    OPT_LAN_RECHECK,
    OPT_DHCP,
)
PROBE_MODES = ("on", "dynamic", "off")
# A probe's answer wait: RFC 5227 waits seconds, which a `docker run` cannot afford; a LAN answers
# an ARP request within milliseconds, and the probes of the next candidates run ahead of time.
DEFAULT_PROBE_WAIT = 0.3
MAX_PROBE_WAIT = 5.0
# An address a foreign device answered for is skipped this long, then probed again.
DEFAULT_LAN_RECHECK = 600.0
_BLOCK_OPTION = {Family.V4: OPT_BLOCK_SIZE, Family.V6: OPT_BLOCK_SIZE6}
DOCKER_OPTION_PREFIX = "com.docker.network."

DEFAULT_LAN = "default"

# Cluster mode: blocks of 64 addresses by default, as Calico's IPAM (/26; /122 for IPv6), so that
# one claim (one etcd round trip) serves many containers while a host with few containers does
# not hold much of the subnet.
DEFAULT_BLOCK_PREFIXLEN = {Family.V4: 26, Family.V6: 122}
# The largest block allowed (/8, /32). The claim transaction compares one key per possible
# enclosing block size, so this bound keeps it below etcd's 128 compares per transaction.
MIN_BLOCK_PREFIXLEN = {Family.V4: 8, Family.V6: 32}

# LAN names end up inside PoolIDs and table keys, which use "/" and "#" as separators.
_LAN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Host names (RFC 1123 labels, dots allowed) plus "_", which some orchestrators use.
_NODE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}")
# Seconds: ASCII digits, no leading zero, an optional fraction ("\d" would take any script's
# digits); the length bound keeps float() finite.
_SECONDS = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")
_MAX_SECONDS_TEXT = 32
_LISTED = 5  # unknown option names quoted in a refusal
_LISTED_CHARACTERS = 40


@dataclass(frozen=True)
class PoolOptions:
    """The --ipam-opt map, syntax-checked, not yet matched against a subnet."""

    lan: str = DEFAULT_LAN
    node_ranges: Mapping[str, tuple[AddressRange, ...]] = field(default_factory=dict)
    nodes: tuple[str, ...] = ()
    exclude: tuple[AddressRange, ...] = ()
    quarantine: float | None = None
    # Prefix length of the blocks claimed in cluster mode, per family, when given.
    block_sizes: Mapping[Family, int] = field(default_factory=dict)
    probe: str = "on"  # one of PROBE_MODES
    probe_wait: float | None = None
    lan_recheck: float | None = None
    dhcp: bool = False
    # The user's options without Docker's own keys: what the store keeps to rebuild the spec.
    raw: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolRequest:
    """A RequestPool call, parsed. `subnet` is None when a default pool must be chosen."""

    address_space: str
    family: Family
    subnet: Subnet | None
    default_prefixlen: int | None
    sub_pool: Subnet | None
    options: PoolOptions


@dataclass(frozen=True)
class PoolSpec:
    """Everything that defines one pool lease, validated against its subnet."""

    address_space: str
    lan: str
    subnet: Subnet
    sub_pool: Subnet | None
    plan: NodePlan | None
    exclude: tuple[AddressRange, ...]
    quarantine: float | None
    raw_options: Mapping[str, str]
    options_digest: str  # "" when no option besides lan matters for this family
    block_size: int | None = None  # the family's block_size option, checked against the span
    probe: str = "on"  # "on": every hand-out is probed; "dynamic": --ip is not; "off"
    probe_wait: float = DEFAULT_PROBE_WAIT
    lan_recheck: float = DEFAULT_LAN_RECHECK
    dhcp: bool = False  # IPv4 only: addresses are leased from the LAN's DHCP server

    @property
    def family(self) -> Family:
        return self.subnet.family

    @property
    def span(self) -> Subnet:
        """Where automatic allocation may draw from without a plan: the ip-range, else the
        subnet. Cluster mode carves its blocks from it."""
        return self.sub_pool if self.sub_pool is not None else self.subnet

    @property
    def block_prefixlen(self) -> int:
        """The prefix length of this pool's cluster blocks: the option, else the default (or the
        whole span, when the span is smaller than a default block)."""
        if self.block_size is not None:
            return self.block_size
        return max(DEFAULT_BLOCK_PREFIXLEN[self.family], self.span.prefixlen)

    @property
    def table_key(self) -> str:
        """The allocation table this lease hands out from: same key, same addresses."""
        return table_key(self.address_space, self.lan, self.subnet)

    @property
    def pool_id(self) -> str:
        pool_id = self.table_key
        if self.sub_pool is not None:
            pool_id += f"/{self.sub_pool}"
        if self.options_digest:
            pool_id += f"#{self.options_digest}"
        return pool_id


def table_key(address_space: str, lan: str, subnet: Subnet) -> str:
    return f"{address_space}/{lan}/{subnet}"


def parse_table_key(key: str) -> tuple[str, str, Subnet]:
    """Inverse of `table_key` (LAN names contain no "/", so the split is unambiguous)."""
    address_space, lan, subnet = key.split("/", 2)
    return address_space, lan, parse_subnet(subnet)


def check_address_space(address_space: str) -> str:
    if address_space not in ADDRESS_SPACES:
        raise InvalidRequest(
            f"unknown address space {shown(address_space)}: this plugin's address spaces are "
            f'"{LOCAL_ADDRESS_SPACE}" and "{GLOBAL_ADDRESS_SPACE}"'
        )
    return address_space


def parse_pool_options(options: Mapping[str, str]) -> PoolOptions:
    """Check the syntax of every --ipam-opt; refuse unknown keys listing the known ones."""
    raw = {k: v for k, v in options.items() if not k.startswith(DOCKER_OPTION_PREFIX)}
    unknown = sorted(
        k
        for k in raw
        if k
        not in (
            OPT_LAN,
            OPT_NODES,
            OPT_EXCLUDE,
            OPT_QUARANTINE,
            *_BLOCK_OPTION.values(),
            OPT_PROBE,
            OPT_PROBE_WAIT,
            OPT_LAN_RECHECK,
            OPT_DHCP,
        )
        and not k.startswith(OPT_RANGE_PREFIX)
    )
    if unknown:
        names = ", ".join(shown(k, _LISTED_CHARACTERS) for k in unknown[:_LISTED])
        if len(unknown) > _LISTED:
            names += f" and {len(unknown) - _LISTED} more"
        raise InvalidRequest(
            f"unknown --ipam-opt {names}: known options are {', '.join(KNOWN_OPTIONS)}"
        )

    lan = raw.get(OPT_LAN, DEFAULT_LAN).strip(ASCII_SPACE)
    if not _LAN_NAME.fullmatch(lan):
        raise InvalidRequest(
            f"invalid --ipam-opt lan={shown(raw.get(OPT_LAN))}: a LAN name is 1-64 letters, "
            "digits, '.', '_' or '-', starting with a letter or digit"
        )

    node_ranges: dict[str, tuple[AddressRange, ...]] = {}
    for key in sorted(k for k in raw if k.startswith(OPT_RANGE_PREFIX)):
        node = key[len(OPT_RANGE_PREFIX) :]
        _check_node_name(node, f"--ipam-opt {OPT_RANGE_PREFIX}<node>")
        node_ranges[node] = parse_range_list(raw[key], what=f"--ipam-opt {key}")

    nodes: tuple[str, ...] = ()
    if OPT_NODES in raw:
        nodes = tuple(part.strip(ASCII_SPACE) for part in raw[OPT_NODES].split(","))
        given = shown(raw[OPT_NODES])
        if not any(nodes):
            raise InvalidRequest(
                f"invalid --ipam-opt nodes={given}: expected node names such as nodes=hostA,hostB"
            )
        seen: set[str] = set()
        for node in nodes:
            _check_node_name(node, f"--ipam-opt nodes={given}")
            if node in seen:
                raise InvalidRequest(
                    f"invalid --ipam-opt nodes={given}: node {shown(node)} is listed twice"
                )
            seen.add(node)
        if node_ranges:
            raise InvalidRequest(
                "--ipam-opt nodes=... cannot be combined with range.<node>=...: write the address "
                "plan one way (nodes= splits the range equally, range.<node>= gives each node its "
                "ranges)"
            )

    exclude: tuple[AddressRange, ...] = ()
    if OPT_EXCLUDE in raw:
        exclude = parse_range_list(raw[OPT_EXCLUDE], what="--ipam-opt exclude")

    quarantine: float | None = None
    if OPT_QUARANTINE in raw:
        text = raw[OPT_QUARANTINE].strip(ASCII_SPACE)
        if len(text) > _MAX_SECONDS_TEXT or not _SECONDS.fullmatch(text):
            raise InvalidRequest(
                f"invalid --ipam-opt quarantine={shown(raw[OPT_QUARANTINE])}: expected a number of "
                "seconds >= 0 (0 turns the quarantine off)"
            )
        quarantine = _parse_seconds(
            OPT_QUARANTINE, raw[OPT_QUARANTINE], "(0 turns the quarantine off)"
        )

    probe = _parse_choice(OPT_PROBE, raw.get(OPT_PROBE, "on"), PROBE_MODES)
    probe_wait: float | None = None
    if OPT_PROBE_WAIT in raw:
        probe_wait = _parse_seconds(OPT_PROBE_WAIT, raw[OPT_PROBE_WAIT], "such as 0.3")
        if not 0 < probe_wait <= MAX_PROBE_WAIT:
            raise InvalidRequest(
                f"invalid --ipam-opt {OPT_PROBE_WAIT}={shown(raw[OPT_PROBE_WAIT])}: a probe waits "
                f"more than 0 and at most {MAX_PROBE_WAIT:g} seconds (probe=off turns probing off)"
            )
    lan_recheck: float | None = None
    if OPT_LAN_RECHECK in raw:
        lan_recheck = _parse_seconds(OPT_LAN_RECHECK, raw[OPT_LAN_RECHECK], "such as 600")
    dhcp = _parse_choice(OPT_DHCP, raw.get(OPT_DHCP, "off"), ("on", "off")) == "on"
    if dhcp and (nodes or node_ranges):
        raise InvalidRequest(
            "--ipam-opt dhcp=on cannot be combined with an address plan (nodes= or "
            "range.<node>=): the LAN's DHCP server decides the addresses"
        )

    block_sizes: dict[Family, int] = {}
    for family, key in _BLOCK_OPTION.items():
        if key in raw:
            block_sizes[family] = _parse_block_size(key, raw[key], family)

    return PoolOptions(
        lan=lan,
        node_ranges=node_ranges,
        nodes=nodes,
        exclude=exclude,
        quarantine=quarantine,
        block_sizes=block_sizes,
        probe=probe,
        probe_wait=probe_wait,
        lan_recheck=lan_recheck,
        dhcp=dhcp,
        raw=dict(sorted(raw.items())),
    )


def _parse_seconds(key: str, value: str, hint: str) -> float:
    text = value.strip(ASCII_SPACE)
    if len(text) > _MAX_SECONDS_TEXT or not _SECONDS.fullmatch(text):
        raise InvalidRequest(
            f"invalid --ipam-opt {key}={shown(value)}: expected a number of seconds >= 0 {hint}"
        )
    return float(text)


def _parse_choice(key: str, value: str, choices: tuple[str, ...]) -> str:
    text = value.strip(ASCII_SPACE).lower()
    if text not in choices:
        raise InvalidRequest(
            f"invalid --ipam-opt {key}={shown(value)}: expected one of {', '.join(choices)}"
        )
    return text


def _parse_block_size(key: str, value: str, family: Family) -> int:
    text = value.strip(ASCII_SPACE).removeprefix("/")
    example = DEFAULT_BLOCK_PREFIXLEN[family]
    if len(text) > 3 or not DECIMAL.fullmatch(text):
        raise InvalidRequest(
            f"invalid --ipam-opt {key}={shown(value)}: expected an {family.label} prefix "
            f"length such as {example} (blocks of {1 << (family.bits - example)} addresses)"
        )
    size = int(text)
    lowest = MIN_BLOCK_PREFIXLEN[family]
    if not lowest <= size <= family.bits:
        hint = f" ({OPT_BLOCK_SIZE6}= sets the IPv6 blocks)" if size > family.bits else ""
        raise InvalidRequest(
            f"invalid --ipam-opt {key}={value}: an {family.label} block size is a prefix length "
            f"from {lowest} to {family.bits}{hint}"
        )
    return size


def _check_node_name(node: str, where: str) -> None:
    if not _NODE_NAME.fullmatch(node):
        raise InvalidRequest(
            f"invalid {where}: {shown(node)} is not a node name (letters, digits, '.', '_', '-'); "
            "name the node as in range.hostA=192.0.2.0/26"
        )


def parse_pool_request(
    *,
    address_space: str,
    pool: str,
    sub_pool: str,
    options: Mapping[str, str],
    v6: bool,
) -> PoolRequest:
    """Parse a RequestPool call. An empty or unspecified pool ("", "0.0.0.0/0", "::/64") asks
    for a default pool (of that prefix length when one is given, as Docker's own IPAM does)."""
    check_address_space(address_space)
    family = Family.V6 if v6 else Family.V4
    subnet: Subnet | None = None
    default_prefixlen: int | None = None
    if pool.strip(ASCII_SPACE):
        parsed = parse_subnet(pool, what="pool")
        if parsed.family is not family:
            raise InvalidRequest(
                f"invalid pool {shown(pool)}: it is {parsed.family.label} but Docker asked for an "
                f"{family.label} pool"
            )
        if parsed.network == 0:
            # "0.0.0.0/24" and "::/64": Docker's way to ask for a default pool of a given size.
            default_prefixlen = parsed.prefixlen or None
        else:
            subnet = parsed
    parsed_sub_pool: Subnet | None = None
    if sub_pool.strip(ASCII_SPACE):
        if subnet is None:
            raise InvalidRequest(
                f"invalid ip-range {shown(sub_pool)}: an ip-range needs a subnet (--subnet) to be "
                "inside of"
            )
        parsed_sub_pool = parse_subnet(sub_pool, what="ip-range")
    return PoolRequest(
        address_space=address_space,
        family=family,
        subnet=subnet,
        default_prefixlen=default_prefixlen,
        sub_pool=parsed_sub_pool,
        options=parse_pool_options(options),
    )


def build_pool_spec(request: PoolRequest, subnet: Subnet) -> PoolSpec:
    """Match the request's ip-range and options against `subnet` (the given or chosen one)."""
    options = request.options
    sub_pool = request.sub_pool
    if sub_pool is not None:
        if sub_pool.family is not subnet.family:
            raise InvalidRequest(
                f"invalid ip-range {sub_pool}: it is {sub_pool.family.label} but pool {subnet} "
                f"is {subnet.family.label}"
            )
        if not subnet.contains_range(sub_pool.as_range()):
            raise InvalidRequest(f"invalid ip-range {sub_pool}: it is not inside pool {subnet}")
        if sub_pool == subnet:
            sub_pool = None  # the same thing said twice; one lease, one PoolID

    family = subnet.family
    span = sub_pool.as_range() if sub_pool is not None else None

    plan: NodePlan | None = None
    if options.nodes:
        if span is None:
            span = subnet.usable_span()
        plan = split_among_nodes(span, options.nodes)
    else:
        own_family = {
            node: tuple(r for r in ranges if r.family is family)
            for node, ranges in options.node_ranges.items()
        }
        own_family = {node: ranges for node, ranges in own_family.items() if ranges}
        for node, ranges in own_family.items():
            where = f"--ipam-opt range.{node}"
            for r in ranges:
                if not subnet.contains_range(r):
                    raise InvalidRequest(f"invalid {where}: {r} is not inside pool {subnet}")
                if sub_pool is not None and not sub_pool.contains_range(r):
                    raise InvalidRequest(
                        f"invalid {where}: {r} is not inside the ip-range {sub_pool} "
                        f"(of pool {subnet})"
                    )
        if own_family:
            plan = plan_from_ranges(own_family)

    own_exclude = [r for r in options.exclude if r.family is family]
    for r in own_exclude:
        if not subnet.contains_range(r):
            raise InvalidRequest(f"invalid --ipam-opt exclude: {r} is not inside pool {subnet}")
    # Canonical (sorted, merged) so that equivalent spellings give the same PoolID.
    exclude = set_to_ranges(family, ranges_to_set(own_exclude))

    block_size = options.block_sizes.get(family)
    if block_size is not None:
        key = _BLOCK_OPTION[family]
        if plan is not None:
            raise InvalidRequest(
                f"--ipam-opt {key}= cannot be combined with an address plan (nodes= or "
                "range.<node>=): with a plan each host has its own ranges and claims no blocks"
            )
        carved = sub_pool if sub_pool is not None else subnet
        if block_size < carved.prefixlen:
            what = f"the ip-range {carved}" if sub_pool is not None else f"pool {carved}"
            raise InvalidRequest(
                f"invalid --ipam-opt {key}={block_size}: a /{block_size} block does not fit in "
                f"{what}; blocks are carved from it, so use /{carved.prefixlen} or longer"
            )

    dhcp = options.dhcp and family is Family.V4  # DHCPv6 is not supported: IPv6 stays ours
    if dhcp and block_size is not None:
        raise InvalidRequest(
            f"--ipam-opt {_BLOCK_OPTION[family]}= cannot be combined with dhcp=on: the LAN's "
            "DHCP server decides the addresses, no blocks are claimed"
        )
    probe_wait = DEFAULT_PROBE_WAIT if options.probe_wait is None else options.probe_wait
    lan_recheck = DEFAULT_LAN_RECHECK if options.lan_recheck is None else options.lan_recheck
    return PoolSpec(
        address_space=request.address_space,
        lan=options.lan,
        subnet=subnet,
        sub_pool=sub_pool,
        plan=plan,
        exclude=exclude,
        quarantine=options.quarantine,
        raw_options=options.raw,
        options_digest=_digest(
            plan,
            options.nodes,
            exclude,
            options.quarantine,
            block_size,
            probe=(options.probe, options.probe_wait, options.lan_recheck),
            dhcp=dhcp,
        ),
        block_size=block_size,
        probe=options.probe,
        probe_wait=probe_wait,
        lan_recheck=lan_recheck,
        dhcp=dhcp,
    )


def _digest(
    plan: NodePlan | None,
    nodes: tuple[str, ...],
    exclude: tuple[AddressRange, ...],
    quarantine: float | None,
    block_size: int | None = None,
    *,
    probe: tuple[str, float | None, float | None] = ("on", None, None),
    dhcp: bool = False,
) -> str:
    """Short hash of the canonical options that matter for this family (lan is in the ID)."""
    parts: list[str] = []
    if nodes:
        parts.append(f"{OPT_NODES}={','.join(nodes)}")
    elif plan is not None:
        parts.extend(
            f"{OPT_RANGE_PREFIX}{node}={describe_ranges(ranges)}"
            for node, ranges in sorted(plan.ranges.items())
        )
    if exclude:
        parts.append(f"{OPT_EXCLUDE}={describe_ranges(exclude)}")
    if quarantine is not None:
        parts.append(f"{OPT_QUARANTINE}={quarantine:g}")
    if block_size is not None:
        # One name for both families: the digest is per family already.
        parts.append(f"{OPT_BLOCK_SIZE}={block_size}")
    mode, wait, recheck = probe
    if mode != "on":
        parts.append(f"{OPT_PROBE}={mode}")
    if wait is not None:
        parts.append(f"{OPT_PROBE_WAIT}={wait:g}")
    if recheck is not None:
        parts.append(f"{OPT_LAN_RECHECK}={recheck:g}")
    if dhcp:
        parts.append(f"{OPT_DHCP}=on")
    if not parts:
        return ""
    return hashlib.sha256(";".join(parts).encode()).hexdigest()[:8]
