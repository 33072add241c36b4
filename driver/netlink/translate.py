"""Kernel errors → driver errors: the one place where an errno becomes a message a user can act on.

Every ``NetlinkError`` of the link layer comes through ``translate`` with an ``Op``: what was being
done (the verb), to which link, of which kind, on which parent. The message names the action and
the object; for the errnos that do not say why (EBUSY, a bare EINVAL, EOPNOTSUPP "Unknown device
type", EADDRINUSE) it says what most likely stands in the way and what to do.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import Any, Final, Literal

from pyroute2.netlink.exceptions import NetlinkError

from driver.errors import (
    AddressInUse,
    KindNotSupported,
    LinkError,
    LinkExists,
    LinkNotFound,
    ParentBusy,
    ParentNotFound,
)

# What the user must load when the kernel does not know a kind (it answers EOPNOTSUPP "Unknown
# device type" after its own request_module() failed).
_KIND_SUPPORT: Final[dict[str, str]] = {
    "macvlan": "macvlan support (module macvlan)",
    "ipvlan": "ipvlan support (module ipvlan)",
    "vlan": "802.1q VLAN support (module 8021q)",
    "dummy": "dummy interface support (module dummy)",
}
_KIND_MODULE: Final[dict[str, str]] = {
    "macvlan": "macvlan",
    "ipvlan": "ipvlan",
    "vlan": "8021q",
    "dummy": "dummy",
}

Verb = Literal[
    "read",
    "create",
    "delete",
    "set up",
    "set alias",
    "set mtu",
    "add address",
    "delete address",
    "add route",
    "delete route",
]
_PHRASES: Final[dict[Verb, str]] = {
    "read": "read",
    "create": "create",
    "delete": "delete",
    "set up": "bring up",
    "set alias": "set the alias of",
    "set mtu": "set the MTU of",
    "add address": "add address {what} to",
    "delete address": "delete address {what} from",
    "add route": "add the route to {what} via",
    "delete route": "delete the route to {what} via",
}


@dataclass(frozen=True, slots=True)
class Op:
    """What was being done when the kernel said no: the context ``translate`` words errors with."""

    verb: Verb
    name: str
    kind: str | None = None
    parent: str | None = None
    mode: str | None = None  # a macvlan in passthru mode reads a bare EINVAL differently
    vlan_id: int | None = None
    mac: str | None = None
    what: str | None = None  # the address or route of an address/route verb

    @property
    def subject(self) -> str:
        link = f"{self.kind} link {self.name}" if self.kind else f"link {self.name}"
        if self.kind == "vlan" and self.vlan_id is not None:
            link = f"VLAN {self.vlan_id} link {self.name}"
        return f"{link} on parent {self.parent}" if self.parent else link

    @property
    def doing(self) -> str:
        return _PHRASES[self.verb].format(what=self.what) + " " + self.subject


def _errno_name(code: int) -> str:
    if code == errno.EOPNOTSUPP:  # Linux's ENOTSUP is the same number; the kernel says EOPNOTSUPP
        return "EOPNOTSUPP"
    return errno.errorcode.get(code, f"errno {code}")


def _kernel_message(err: NetlinkError) -> str | None:
    """The kernel's extended-ack text, or None (pyroute2 fills in strerror() when it has none)."""
    message = err.args[1] if len(err.args) > 1 else None
    if not message or message == os.strerror(err.code):
        return None
    return str(message)


def translate(err: NetlinkError, op: Op) -> LinkError:
    """The one place where a kernel errno becomes an error the user can act on."""
    code = int(err.code)
    kmsg = _kernel_message(err)
    detail = f"{_errno_name(code)}: {kmsg or os.strerror(code)}"
    facts: dict[str, Any] = {"errno": code, "kernel_message": kmsg}
    creating = op.verb == "create"

    if code in (errno.EPERM, errno.EACCES):
        return LinkError(
            f"cannot {op.doing}: {detail}; pymacvlan needs CAP_NET_ADMIN in this network namespace",
            **facts,
        )
    if code == errno.ENODEV:
        if creating and op.parent:
            return ParentNotFound(
                f"parent interface {op.parent} does not exist on this host", **facts
            )
        return LinkNotFound(f"cannot {op.doing}: link {op.name} does not exist", **facts)
    if code == errno.EEXIST and creating:
        if op.kind == "vlan" and kmsg and "vlan" in kmsg.lower():
            return LinkExists(
                f"cannot create VLAN link {op.name}: parent {op.parent} already has a link for "
                f"VLAN {op.vlan_id} ({kmsg})",
                **facts,
            )
        return LinkExists(f"a link named {op.name} already exists", **facts)
    if (
        code == errno.EOPNOTSUPP
        and creating
        and op.kind in _KIND_SUPPORT
        and (kmsg is None or "unknown device type" in kmsg.lower())
    ):
        return KindNotSupported(
            f"cannot create {op.kind} link {op.name}: this kernel has no {_KIND_SUPPORT[op.kind]}; "
            f"load it (modprobe {_KIND_MODULE[op.kind]}) or use a kernel that has it",
            **facts,
        )
    if code == errno.EBUSY and creating and op.kind in ("macvlan", "ipvlan"):
        other = "ipvlan" if op.kind == "macvlan" else "macvlan"
        return ParentBusy(
            f"cannot create {op.subject}: parent {op.parent} is already in use by {other} links "
            "(perhaps inside containers), a bridge or a bond; the kernel allows only one of them "
            "on a parent",
            **facts,
        )
    if code == errno.EINVAL and creating and op.kind == "macvlan" and kmsg is None:
        # The sizes and the parent's type were checked before asking; what is left for a bare
        # EINVAL is the passthru rule against children we could not see (inside containers).
        if op.mode == "passthru":
            return ParentBusy(
                f"cannot create passthru macvlan link {op.name}: parent {op.parent} already has "
                "macvlan links (perhaps inside containers); passthru mode needs the parent to "
                f"itself ({detail})",
                **facts,
            )
        return ParentBusy(
            f"cannot create {op.subject}: the kernel refused it ({detail}); the parent most likely "
            "has a passthru macvlan link (perhaps inside a container), which allows no other link "
            "on it",
            **facts,
        )
    if code == errno.EADDRINUSE and op.verb == "set up":
        where = f"on parent {op.parent}" if op.parent else "on its parent"
        return AddressInUse(
            f"cannot bring up {op.subject}: its MAC address {op.mac} is already used {where}, by "
            "another macvlan link (perhaps inside a container) or by the parent itself; give it "
            "another MAC address",
            **facts,
        )
    return LinkError(f"cannot {op.doing}: {detail}", **facts)
