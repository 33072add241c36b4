"""``/IpamDriver.*`` request and response models (moby ``ipams/remote/api/api.go``)."""

from __future__ import annotations

from pydantic import Field

from plugin.wire.base import (
    MAX_ADDRESS_LENGTH,
    MAX_ID_LENGTH,
    MAX_POOL_ID_LENGTH,
    WireRequest,
    WireResponse,
)


class CapabilitiesResponse(WireResponse):
    requires_mac_address: bool = Field(alias="RequiresMACAddress")
    requires_request_replay: bool = Field(alias="RequiresRequestReplay")


class AddressSpacesResponse(WireResponse):
    local_default_address_space: str = Field(alias="LocalDefaultAddressSpace")
    global_default_address_space: str = Field(alias="GlobalDefaultAddressSpace")


class RequestPoolRequest(WireRequest):
    address_space: str = Field(default="", alias="AddressSpace", max_length=MAX_ID_LENGTH)
    pool: str = Field(default="", alias="Pool", max_length=MAX_ADDRESS_LENGTH)
    sub_pool: str = Field(default="", alias="SubPool", max_length=MAX_ADDRESS_LENGTH)
    options: dict[str, str] = Field(default_factory=dict, alias="Options")
    v6: bool = Field(default=False, alias="V6")


class RequestPoolResponse(WireResponse):
    pool_id: str = Field(alias="PoolID")
    pool: str = Field(alias="Pool")
    data: dict[str, str] = Field(default_factory=dict, alias="Data")


class ReleasePoolRequest(WireRequest):
    pool_id: str = Field(alias="PoolID", min_length=1, max_length=MAX_POOL_ID_LENGTH)


class RequestAddressRequest(WireRequest):
    pool_id: str = Field(alias="PoolID", min_length=1, max_length=MAX_POOL_ID_LENGTH)
    address: str = Field(default="", alias="Address", max_length=MAX_ADDRESS_LENGTH)
    options: dict[str, str] = Field(default_factory=dict, alias="Options")


class RequestAddressResponse(WireResponse):
    address: str = Field(alias="Address")
    data: dict[str, str] = Field(default_factory=dict, alias="Data")


class ReleaseAddressRequest(WireRequest):
    pool_id: str = Field(alias="PoolID", min_length=1, max_length=MAX_POOL_ID_LENGTH)
    address: str = Field(alias="Address", min_length=1, max_length=MAX_ADDRESS_LENGTH)
