"""Deterministic names of the links the plugin creates.

Deterministic, so that a repeated request finds the link it made the first time, and a restarted
plugin knows which links are its own without a scan. All fit the kernel's 15-character limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection

from driver.linkinfo import IFALIASZ, IFNAMSIZ

# Endpoint sub-interfaces live in the host namespace only between Join and Docker moving them into
# the container; "pmv" marks them as ours in `ip link` meanwhile.
ENDPOINT_PREFIX = "pmv"
# Docker's own drivers call the dummy parent of a parent-less network "dm-<network id>".
DUMMY_PREFIX = "dm-"
SHIM_PREFIX = "pmvh-"
_ID_CHARS = 12


def endpoint_link_name(endpoint_id: str, taken: Collection[str] = ()) -> str:
    """``pmv`` + the first 12 characters of the ID, unless another endpoint has that name.

    Docker's IDs are random, but two may share their first 12 characters; the second then gets
    ``pmv`` + 12 hex digits of a hash of its whole ID (of the ID and a counter, in the unlikely
    case that is taken too), so that both can be joined at once. ``taken``: the link names
    recorded for the other endpoints.
    """
    name = ENDPOINT_PREFIX + endpoint_id[:_ID_CHARS]
    attempt = 0
    while name in taken:
        name = ENDPOINT_PREFIX + _digest(f"{endpoint_id}#{attempt}", _ID_CHARS)
        attempt += 1
    return name


def dummy_link_name(network_id: str) -> str:
    return DUMMY_PREFIX + network_id[:_ID_CHARS]


def shim_link_name(parent: str) -> str:
    """One host shim per parent: every network on that LAN shares the host's presence on it."""
    return SHIM_PREFIX + _digest(parent, 10)


def vlan_link_name(base: str, vlan_id: int) -> str:
    """``eth0`` + 10 → ``eth0.10`` when it fits; otherwise a short stable name.

    Long names (``enp0s31f6u1u2`` + ``.4000``) become ``v4000-<hash of the base>``; the link's
    alias still says which parent and VLAN it is.
    """
    natural = f"{base}.{vlan_id}"
    if len(natural.encode()) <= IFNAMSIZ:  # bytes: the kernel counts them, not characters
        return natural
    head = f"v{vlan_id}-"
    return head + _digest(base, IFNAMSIZ - len(head))


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


# Every link the plugin creates carries an alias "pymacvlan:<role>:<id>" (IFLA_IFALIAS, shown by
# `ip link`). Before deleting a link the driver reads it back: a link whose alias is not ours was
# not made by us (or was replaced by someone), and is left alone.
OWNER_TAG = "pymacvlan"
ROLE_VLAN = "vlan"
ROLE_DUMMY = "dummy"
ROLE_ENDPOINT = "endpoint"
ROLE_SHIM = "shim"
# `pymacvlan doctor`'s short-lived test link (driver/diagnose/child_mac.py): no record owns it;
# its id is when it was made, so that one left behind by a killed run can be told old.
ROLE_DOCTOR = "doctor"


def owned_alias(role: str, ident: str) -> str:
    return f"{OWNER_TAG}:{role}:{ident}"


def is_owned(alias: str | None, role: str | None = None) -> bool:
    if not alias or not alias.startswith(OWNER_TAG + ":"):
        return False
    return role is None or alias.split(":", 2)[1] == role


# An endpoint's link names its endpoint in full: link names have room for 12 characters of the
# ID only, and two endpoints may share those. Aliases hold 255 bytes (IFALIASZ); an ID too long
# for that (state of an older version, which took any ID) is named by its hash.
_ALIAS_ROOM = IFALIASZ - len(f"{OWNER_TAG}:{ROLE_ENDPOINT}:")


def endpoint_alias(endpoint_id: str) -> str:
    if len(endpoint_id.encode()) > _ALIAS_ROOM:
        return owned_alias(ROLE_ENDPOINT, "sha256-" + _digest(endpoint_id, 64))
    return owned_alias(ROLE_ENDPOINT, endpoint_id)


def is_endpoint_link_of(alias: str | None, endpoint_id: str) -> bool:
    """Whether a link with ``alias`` is the link of this endpoint, and no other's.

    Links made before aliases carried the whole ID say ``pymacvlan:endpoint:<12 characters>``;
    they stay their endpoint's, so that an upgrade leaves no link behind.
    """
    return alias is not None and alias in (
        endpoint_alias(endpoint_id),
        owned_alias(ROLE_ENDPOINT, endpoint_id[:_ID_CHARS]),
    )
