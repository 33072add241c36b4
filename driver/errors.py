"""Every error the driver raises: one hierarchy, each class saying whose fault it is.

``caller_fault`` is what the HTTP layer (plugin/errors.py) turns into a status: True → 400 (the
request's values are invalid: a bad option, a parent that does not exist), False → 500 (the host or
the kernel refused something a valid request asked for). The message is shown to the user as it is,
so it names the object and the action and, where we know it, what to do.
"""

from __future__ import annotations

from typing import ClassVar

SHOWN_CHARACTERS = 64  # of a value the request supplied, in a message


def shown(value: object, limit: int = SHOWN_CHARACTERS) -> str:
    """A value from the request, as a message quotes it: ``'eth0'``, escaped like repr(), and cut
    after ``limit`` characters with its length, so that a hostile megabyte is never echoed."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def shown_character(char: str) -> str:
    """One character a rule refused, unmistakably: ``'\\x00' (U+0000)``, ``'é' (U+00E9)``; a digit
    of another script shows its code point too."""
    return f"{char!r} (U+{ord(char):04X})"


class DriverError(Exception):
    """Base of every driver error; ``str(error)`` is the user-facing message."""

    caller_fault: ClassVar[bool] = False


class InvalidRequest(DriverError):
    """The request itself is wrong: answering it again will fail again."""

    caller_fault = True


class InvalidOption(InvalidRequest):
    """An option value (or a link name, VLAN id, MTU, MAC address, mode) is invalid.

    Raised before anything is asked of the kernel.
    """


class LinkError(DriverError):
    """The kernel refused or failed a link, address or route operation.

    ``errno`` and ``kernel_message`` (the netlink extended-ack text, when the kernel gave one) are
    kept for logs and tests; the message already contains what the user needs.
    """

    def __init__(
        self, message: str, *, errno: int | None = None, kernel_message: str | None = None
    ) -> None:
        super().__init__(message)
        self.errno = errno
        self.kernel_message = kernel_message


class ParentNotFound(LinkError):
    """The parent interface a request names does not exist: the option value is wrong."""

    caller_fault = True


class ParentAbsent(LinkError):
    """The parent of a network that exists is not on the host now: not yet (a NIC that comes
    after the daemon at boot) or no more (unplugged). Not the request's fault: the same request
    works once the parent is there."""


class LinkNotFound(LinkError):
    """A link the driver expected (its own, or one it was told to use) is gone."""


class LinkExists(LinkError):
    """A link with that name (or a VLAN link with that id on that parent) already exists."""


class KindNotSupported(LinkError):
    """The running kernel has no driver for this kind of link (no module, not built in)."""


class ParentBusy(LinkError):
    """The parent is already used in a way the kernel does not combine with this request.

    macvlan and ipvlan links on one parent, a second link next to a passthru macvlan, a macvlan on
    a bridge port: the kernel gives each parent one receive hook.
    """


class AddressInUse(LinkError):
    """A MAC address is already taken on that parent (by a sibling macvlan or the parent itself)."""


class NotFound(DriverError):
    """A network or endpoint Docker names is not in the plugin's state.

    Not the caller's fault as such: it usually means the plugin's state directory was reset while
    Docker kept its networks.
    """


class StoreError(DriverError):
    """The driver's state file cannot be read or written, or holds what this version cannot
    read; the message names the file and what to do."""


class Conflict(InvalidRequest):
    """The request contradicts what the plugin already has under the same ID."""
