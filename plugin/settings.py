"""The daemon's settings: flags over ``PYMACVLAN_*`` environment variables over defaults.

Environment variables are how a managed plugin is configured (``docker plugin set``), flags are how
an operator runs the daemon by hand; both spell the same settings.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path

from ipam.cluster.config import (
    DEFAULT_PREFIX,
    DEFAULT_SWEEP_SECONDS,
    DEFAULT_TIMEOUT,
    ClusterConfig,
    check_node_name,
)
from ipam.defaults import parse_default_pools
from ipam.errors import IpamError

ENV_PREFIX = "PYMACVLAN_"

DEFAULT_SOCKET = Path("/run/docker/plugins/pymacvlan.sock")
DEFAULT_STATE_DIR = Path("/var/lib/pymacvlan")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
# Docker's own local-scope defaults (moby ipamutils), so auto-picked subnets look familiar, and for
# IPv6 a unique local /48 derived from the node name (RFC 4193), split into /64s.
DEFAULT_POOLS = (
    "172.17.0.0/16:16,172.18.0.0/16:16,172.19.0.0/16:16,"
    "172.20.0.0/14:16,172.24.0.0/14:16,172.28.0.0/14:16,192.168.0.0/16:20,ula"
)


class SettingsError(ValueError):
    """A setting has a value the daemon cannot use."""


@dataclass(frozen=True)
class Settings:
    socket: Path = DEFAULT_SOCKET
    state_dir: Path = DEFAULT_STATE_DIR
    log_level: str = "info"
    log_format: str = "text"
    node_name: str = ""
    default_pools: str = DEFAULT_POOLS
    quarantine_seconds: float = 300.0
    # Ask Docker for every container's MAC before its address (IPAM capability
    # RequiresMACAddress): DHCP leases then follow `docker run --mac-address` on Docker < 29.
    mac_from_docker: bool = False
    # DHCP mode: the least time between two tries of a renewal that got no answer, and between
    # two requests for a lost lease (RFC 2131 §4.4.5 says 60 s; tests shorten it).
    dhcp_retry_seconds: float = 60.0
    # Gratuitous ARP / unsolicited NA for each new container address (0 turns them off).
    announce_count: int = 3
    announce_interval: float = 1.0
    # Largest request body accepted; Docker's biggest (CreateNetwork) is a few KiB.
    max_body_bytes: int = 1 << 20
    # Cluster mode (docs/cluster.md): on when etcd endpoints are given.
    etcd_endpoints: str = ""
    etcd_prefix: str = DEFAULT_PREFIX
    etcd_timeout: float = DEFAULT_TIMEOUT
    cluster_sweep_seconds: float = DEFAULT_SWEEP_SECONDS
    # Securing etcd (docs/cluster.md, "Securing etcd"): files read once at start-up.
    etcd_ca: str = ""
    etcd_cert: str = ""
    etcd_key: str = ""
    etcd_user: str = ""
    # From PYMACVLAN_ETCD_PASSWORD only (no flag: `ps` would show it); never in repr().
    etcd_password: str = field(default="", repr=False)
    etcd_password_file: str = ""
    # HOST:PORT where Prometheus scrapes /metrics and /health over TCP; empty: no listener (both
    # are on the plugin socket anyway, under /pymacvlan/v1/).
    metrics_listen: str = ""

    def __post_init__(self) -> None:
        if self.log_level not in LOG_LEVELS:
            raise SettingsError(
                f"log level {self.log_level!r} is not one of {', '.join(LOG_LEVELS)}"
            )
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(
                f"log format {self.log_format!r} is not one of {', '.join(LOG_FORMATS)}"
            )
        if not 0 <= self.announce_count <= 10:
            raise SettingsError(f"announce count must be 0-10, not {self.announce_count}")
        if self.announce_interval <= 0:
            raise SettingsError(f"announce interval must be > 0, not {self.announce_interval}")
        if self.quarantine_seconds < 0:
            raise SettingsError(f"quarantine must be >= 0 seconds, not {self.quarantine_seconds}")
        if not 0 < self.dhcp_retry_seconds < math.inf:  # also refuses NaN
            raise SettingsError(
                f"DHCP retry must be > 0 seconds (and finite), not {self.dhcp_retry_seconds}"
            )
        if not self.node_name:
            # The node name keys this host's part of every per-host address plan.
            object.__setattr__(self, "node_name", socket.gethostname())
        if self.cluster is not None:
            try:
                check_node_name(self.node_name)
            except IpamError as exc:
                raise SettingsError(str(exc)) from None
        if self.metrics_listen:
            parse_listen_address(self.metrics_listen)  # a typo stops the daemon at its start

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """(host, port) of the metrics listener; None when it is off."""
        return parse_listen_address(self.metrics_listen) if self.metrics_listen else None

    @cached_property
    def cluster(self) -> ClusterConfig | None:
        """Cluster mode's configuration; None when no etcd endpoints are set (mode off).
        Computed once: it reads the TLS and password files."""
        return cluster_config(
            self.etcd_endpoints,
            self.etcd_prefix,
            self.etcd_timeout,
            self.cluster_sweep_seconds,
            security=EtcdSecurity.of(self),
        )


@dataclass(frozen=True)
class EtcdSecurity:
    """The settings that secure the traffic with etcd (as `add_etcd_arguments` reads them)."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    user: str = ""
    password: str = field(default="", repr=False)
    password_file: str = ""

    @classmethod
    def of(cls, values: object) -> EtcdSecurity:
        """From `Settings` or parsed arguments: their `etcd_*` attributes."""
        return cls(
            **{f.name: str(getattr(values, "etcd_" + f.name, "") or "") for f in fields(cls)}
        )


def cluster_config(
    endpoints: str,
    prefix: str = DEFAULT_PREFIX,
    timeout: float = DEFAULT_TIMEOUT,
    sweep_seconds: float = DEFAULT_SWEEP_SECONDS,
    *,
    security: EtcdSecurity | None = None,
) -> ClusterConfig | None:
    sec = security or EtcdSecurity()
    try:
        return ClusterConfig.parse(
            endpoints,
            prefix=prefix,
            timeout=timeout,
            sweep_seconds=sweep_seconds,
            ca=sec.ca,
            cert=sec.cert,
            key=sec.key,
            user=sec.user,
            password=sec.password,
            password_file=sec.password_file,
        )
    except IpamError as exc:
        raise SettingsError(str(exc)) from None


# A host name as RFC 1123 spells it (letters, digits, hyphens, dots).
_HOST_NAME = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def parse_listen_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPV6]:PORT`` or ``:PORT`` (every address) as (host, port); host ""
    for every address, port 0 for any free one."""
    shown = text if len(text) <= 80 else text[:77] + "..."
    problem = (
        f"metrics listen address {shown!r} is not HOST:PORT, [IPV6]:PORT or :PORT "
        "(such as 127.0.0.1:9523)"
    )
    host, colon, port_text = text.strip().rpartition(":")
    if not colon or not port_text.isascii() or not port_text.isdigit():
        raise SettingsError(problem)
    port = int(port_text)
    if port > 65535:
        raise SettingsError(f"metrics listen port must be 0-65535, not {port}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise SettingsError(problem) from None
    elif host and not _HOST_NAME.fullmatch(host):
        raise SettingsError(problem)
    return host, port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for every setting; their defaults come from the environment, then the built-ins."""
    env = os.environ
    d = Settings.__dataclass_fields__

    def default(name: str) -> object:
        return env.get(ENV_PREFIX + name.upper(), d[name].default)

    parser.add_argument(
        "--socket",
        type=Path,
        default=default("socket"),
        help="unix socket to serve on (PYMACVLAN_SOCKET)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=default("state_dir"),
        help="directory of the durable state (PYMACVLAN_STATE_DIR)",
    )
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default=default("log_level"), help="PYMACVLAN_LOG_LEVEL"
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=default("log_format"),
        help="PYMACVLAN_LOG_FORMAT",
    )
    parser.add_argument(
        "--node-name",
        default=default("node_name"),
        help="this host's name in per-host address plans; default: the host name "
        "(PYMACVLAN_NODE_NAME)",
    )
    parser.add_argument(
        "--default-pools",
        default=default("default_pools"),
        help="pools for networks created without --subnet, as BASE:SIZE,... "
        "(PYMACVLAN_DEFAULT_POOLS)",
    )
    parser.add_argument(
        "--quarantine-seconds",
        type=float,
        default=default("quarantine_seconds"),
        help="how long a released address is not handed out again while others "
        "are free (PYMACVLAN_QUARANTINE_SECONDS)",
    )
    parser.add_argument(
        "--mac-from-docker",
        type=parse_switch,
        default=default("mac_from_docker"),
        metavar="on|off",
        help="have Docker choose every container's MAC and send it with the address request, "
        "so that DHCP leases follow --mac-address (docs/ipam.md); off by default "
        "(PYMACVLAN_MAC_FROM_DOCKER)",
    )
    parser.add_argument(
        "--dhcp-retry-seconds",
        type=float,
        default=default("dhcp_retry_seconds"),
        help="DHCP mode: the least time between two tries of an unanswered lease renewal, and "
        "between two requests for a lost lease; default 60, RFC 2131 "
        "(PYMACVLAN_DHCP_RETRY_SECONDS)",
    )
    parser.add_argument(
        "--announce-count",
        type=int,
        default=default("announce_count"),
        help="gratuitous ARP / unsolicited NA messages sent for each new "
        "container address, 0 for none (PYMACVLAN_ANNOUNCE_COUNT)",
    )
    parser.add_argument(
        "--announce-interval",
        type=float,
        default=default("announce_interval"),
        help="seconds between them (PYMACVLAN_ANNOUNCE_INTERVAL)",
    )
    add_etcd_arguments(parser)
    parser.add_argument(
        "--cluster-sweep-seconds",
        type=float,
        default=default("cluster_sweep_seconds"),
        help="cluster mode: how often this host checks its blocks against etcd and gives back "
        "empty ones (PYMACVLAN_CLUSTER_SWEEP_SECONDS)",
    )
    parser.add_argument(
        "--metrics-listen",
        default=default("metrics_listen"),
        metavar="HOST:PORT",
        help="also serve the Prometheus metrics (/metrics) and the health (/health) over TCP "
        "there; off by default: both are on the plugin socket under /pymacvlan/v1/ "
        "(PYMACVLAN_METRICS_LISTEN)",
    )


def parse_switch(text: object) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, not {str(text)[:20]!r}")


def add_etcd_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that locate the etcd cluster (`serve` and the `cluster` commands share them)."""
    env = os.environ
    d = Settings.__dataclass_fields__

    def default(name: str) -> object:
        return env.get(ENV_PREFIX + name.upper(), d[name].default)

    group = parser.add_argument_group("cluster mode (docs/cluster.md)")
    group.add_argument(
        "--etcd-endpoints",
        default=default("etcd_endpoints"),
        metavar="URL[,URL...]",
        help="etcd client URLs such as http://127.0.0.1:2379; cluster mode is on when set "
        "(PYMACVLAN_ETCD_ENDPOINTS)",
    )
    group.add_argument(
        "--etcd-prefix",
        default=default("etcd_prefix"),
        help=f"key prefix in etcd, default {DEFAULT_PREFIX} (PYMACVLAN_ETCD_PREFIX)",
    )
    group.add_argument(
        "--etcd-timeout",
        type=float,
        default=default("etcd_timeout"),
        help="seconds one etcd request may take; a cluster call gives up after three times "
        f"that, default {DEFAULT_TIMEOUT:g} (PYMACVLAN_ETCD_TIMEOUT)",
    )
    group.add_argument(
        "--etcd-ca",
        default=default("etcd_ca"),
        metavar="FILE",
        help="https:// endpoints: PEM bundle of the CA(s) that sign etcd's certificates; "
        "default: the system's CAs (PYMACVLAN_ETCD_CA)",
    )
    group.add_argument(
        "--etcd-cert",
        default=default("etcd_cert"),
        metavar="FILE",
        help="https:// endpoints: this host's PEM client certificate, for etcd's "
        "--client-cert-auth (PYMACVLAN_ETCD_CERT)",
    )
    group.add_argument(
        "--etcd-key",
        default=default("etcd_key"),
        metavar="FILE",
        help="the client certificate's unencrypted PEM private key (PYMACVLAN_ETCD_KEY)",
    )
    group.add_argument(
        "--etcd-user",
        default=default("etcd_user"),
        help="etcd user to authenticate as; its password comes from the environment "
        "variable PYMACVLAN_ETCD_PASSWORD or from --etcd-password-file (PYMACVLAN_ETCD_USER)",
    )
    group.add_argument(
        "--etcd-password-file",
        default=default("etcd_password_file"),
        metavar="FILE",
        help="file whose first line is the etcd user's password (PYMACVLAN_ETCD_PASSWORD_FILE)",
    )
    # The password itself has no flag: a command line is visible to every user (ps).
    parser.set_defaults(etcd_password=default("etcd_password"))


def from_arguments(args: argparse.Namespace) -> Settings:
    values: Mapping[str, object] = vars(args)
    kwargs = {f.name: values[f.name] for f in fields(Settings) if f.name in values}
    try:
        settings = Settings(**kwargs)  # type: ignore[arg-type]
        # Checked now, so that a typo stops the daemon at start rather than its first network.
        parse_default_pools(settings.default_pools, node_name=settings.node_name)
    except (TypeError, ValueError, IpamError) as exc:
        raise SettingsError(str(exc)) from exc
    return settings
