"""Shared base classes for the wire models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


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
