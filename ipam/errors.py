"""The one exception hierarchy of the IPAM domain.

Rule: every error the IPAM package raises is an `IpamError`, and its class says whether the caller
is at fault (`caller_fault`). The HTTP layer maps `caller_fault=True` to HTTP 400 and everything
else to HTTP 500, always as `{"Err": message}`; it never inspects the message. Messages are
written for the person who typed `docker network create` / `docker run`: what went wrong, with
which pool, range or address, and what to do.

The texts of the failures Docker users already know start like Docker's own IPAM errors
("no available addresses on this pool", "Address already in use", "requested address is out of
range") so that searches and habits carry over, then add the specifics Docker leaves out.
"""

from __future__ import annotations

from typing import ClassVar

SHOWN_CHARACTERS = 64  # of a value the request supplied, in a message


def shown(value: object, limit: int = SHOWN_CHARACTERS) -> str:
    """A value from the request, as a message quotes it: ``'lan1'``, escaped like repr(), and cut
    after ``limit`` characters with its length, so that a hostile megabyte is never echoed."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


class IpamError(Exception):
    """Base of every IPAM error. `caller_fault` tells the transport which status to use."""

    caller_fault: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidRequest(IpamError):
    """The request itself is wrong: bad CIDR, host bits set, unknown or malformed option,
    an address plan that does not fit, an address outside the pool. Fixing the command fixes it."""

    caller_fault = True


class AddressOutOfRange(InvalidRequest):
    """A specific address was requested that is not a usable address of the pool."""


class PoolNotFound(IpamError):
    """A pool ID this plugin does not know (RequestAddress only; releases of unknown pools
    succeed because they must be idempotent)."""


class PoolOverlap(IpamError):
    """A subnet overlaps, without being equal to, a subnet already in use on the same LAN:
    both tables would hand out the same addresses."""


class NoAvailableAddresses(IpamError):
    """Every address this host may hand out in the pool is taken."""


class AddressInUse(IpamError):
    """A specific address was requested that is already held and cannot be shared."""


class NoAvailablePool(IpamError):
    """No default pool is left for a network created without --subnet."""


class StoreError(IpamError):
    """The durable state could not be read or written; nothing was changed."""


class AddressOwnedElsewhere(AddressInUse):
    """Cluster mode: a specific address (--ip) lies in a block another host has claimed; only
    that host may hand it out."""


class ClusterError(IpamError):
    """Cluster mode: the etcd cluster answered something pymacvlan cannot work with (a refused
    request, a race that did not settle). Nothing was changed."""


class ClusterUnavailable(ClusterError):
    """Cluster mode: no etcd endpoint answered in time. Allocation inside this host's blocks goes
    on; what needs the cluster (a new block, an --ip outside them) fails with this."""


class EtcdAccessDenied(ClusterUnavailable):
    """Cluster mode: etcd refuses this host: its certificate is not trusted (or this host does
    not trust etcd's), or the user name or password is wrong, or the user may not use the key
    prefix. Like `ClusterUnavailable`, allocation inside this host's blocks goes on and what
    needs the cluster fails, with this message, until the settings are fixed."""


class DhcpFailed(IpamError):
    """DHCP mode: the LAN's DHCP server could not be asked, did not answer, or refused a lease
    the plugin asked for on its own (an automatic address); nothing is held."""


class DhcpRequestRefused(InvalidRequest):
    """DHCP mode: the request cannot be served as asked: a gateway without --gateway, an --ip the
    server refuses or leases as another address, a --subnet that is not the server's scope."""
