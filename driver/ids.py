"""The IDs Docker gives networks and endpoints, checked before anything is named after them.

Links are named after IDs (``pmv`` + 12 characters of an endpoint ID, ``dm-`` + 12 of a network
ID) and records are keyed by them. Docker's IDs are 64 lowercase hex digits; an ID with ``/``, a
space, a NUL or a non-ASCII letter would make a link name the kernel refuses, and the endpoint or
network could never be deleted again. So creation takes a safe superset of Docker's IDs, checked
here: 1 to 128 ASCII letters, digits, ``-``, ``_`` and ``.``. (Calls that name an existing ID are
not held to it: a record stored by an older version must stay deletable.)
"""

from __future__ import annotations

from typing import Final

from driver.errors import InvalidOption, shown, shown_character

MAX_ID_LENGTH: Final = 128
_ID_CHARACTERS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
)
_RULE: Final = (
    f"an ID is 1 to {MAX_ID_LENGTH} ASCII letters, digits, '-', '_' or '.' "
    "(Docker sends 64 hexadecimal digits)"
)


def check_id(field: str, value: str) -> None:
    """Refuse an ID no link may be named after; ``field`` is Docker's name for it (EndpointID)."""
    if not value:
        raise InvalidOption(f"{field} is empty; {_RULE}")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidOption(
            f"{field} has {len(value)} characters, at most {MAX_ID_LENGTH} are allowed; {_RULE}"
        )
    for position, char in enumerate(value, 1):
        if char not in _ID_CHARACTERS:
            raise InvalidOption(
                f"{field} {shown(value)} is not valid: character {shown_character(char)} at "
                f"position {position} is not allowed; {_RULE}"
            )
