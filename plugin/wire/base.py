"""Shared base classes for the wire models."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, field_validator

# Bounds at the door, far above anything Docker sends, so that no field is ever a megabyte in
# memory, in a message, in the log or in the store; a longer value is refused (HTTP 400) with its
# length, never its text (plugin/errors.py).
# IDs: Docker's are 64 characters. Creating a network or an endpoint holds an ID to a stricter rule
# (driver.ids: what link names are made of); the other calls take any ID up to this bound, so that
# a record an older version stored can still be deleted.
MAX_ID_LENGTH: Final = 1024
# PoolIDs are ours: "<space>/<lan>/<subnet>[/<ip-range>][#<digest>]" is at most 168 characters.
MAX_POOL_ID_LENGTH: Final = 256
# An address, or an address/prefix: the longest is 49 characters (ffff:...:255.255.255.255/128).
MAX_ADDRESS_LENGTH: Final = 64


class WireRequest(BaseModel):
    """A request body as Docker sends it. Go encodes nil maps and slices as ``null``."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True, strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any, info: Any) -> Any:
        # Go's encoder writes a nil map or slice as null; the protocol means "none given".
        field = cls.model_fields[info.field_name]
        if value is None and not field.is_required():
            if field.default_factory is not None:
                return field.default_factory()  # type: ignore[call-arg]
            return field.default
        return value


class WireResponse(BaseModel):
    """A success response. Errors never travel in a 200 (see plugin/errors.py)."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")


class Empty(WireRequest):
    """Methods that Docker calls with no body at all (Activate, GetCapabilities, ...)."""


class EmptyResponse(WireResponse):
    """``{}``: success with nothing to say."""
