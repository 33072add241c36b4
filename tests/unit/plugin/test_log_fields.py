"""Every log line is bounded: each field is cut with its length, a traceback gets more room."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from plugin.errors import describe_validation_error
from plugin.logs import MAX_FIELD_CHARACTERS, MAX_TRACEBACK_CHARACTERS, cap_fields
from plugin.wire import ipam, network
from plugin.wire.base import WireRequest

HUGE = "x" * 900_000


def capped(**fields: Any) -> dict[str, Any]:
    return dict(cap_fields(None, "info", dict(fields)))


def test_short_fields_and_numbers_are_left_as_they_are() -> None:
    fields = {"event": "ok", "ms": 1.5, "count": 3, "flag": True, "none": None, "ids": ["a"]}
    assert capped(**fields) == fields


def test_a_long_string_is_cut_with_its_length() -> None:
    out = capped(pool_id=HUGE)["pool_id"]
    assert len(out) < MAX_FIELD_CHARACTERS + 40
    assert out.endswith("... (900000 characters)")


def test_a_long_list_or_object_is_cut_as_text() -> None:
    out = capped(links=[HUGE, HUGE])["links"]
    assert isinstance(out, str)
    assert len(out) < MAX_FIELD_CHARACTERS + 40


def test_a_traceback_has_more_room_but_is_bounded_too() -> None:
    trace = "Traceback ...\n" + "y" * 5000
    assert capped(exception=trace)["exception"] == trace
    assert len(capped(exception=HUGE)["exception"]) < MAX_TRACEBACK_CHARACTERS + 40


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (ipam.RequestAddressRequest, {"PoolID": HUGE}, "PoolID"),
        (ipam.RequestPoolRequest, {"Pool": HUGE}, "Pool"),
        (network.EndpointRequest, {"NetworkID": "n", "EndpointID": HUGE}, "EndpointID"),
        (
            network.CreateNetworkRequest,
            {"NetworkID": "n", "IPv4Data": [{"Pool": "192.0.2.0/24", "AuxAddresses": {"a": HUGE}}]},
            "IPv4Data.0.AuxAddresses.a",
        ),
    ],
)
def test_an_oversized_field_is_named_with_its_length_not_its_text(
    model: type[WireRequest], body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    message = describe_validation_error("X", caught.value)
    assert f"{field}: String should have at most" in message
    assert "(got 900000 characters)" in message
    assert len(message) < 200


def test_a_request_with_many_errors_names_the_first_few() -> None:
    with pytest.raises(ValidationError) as caught:
        ipam.RequestPoolRequest.model_validate({"Options": {f"k{i}": i for i in range(1000)}})
    message = describe_validation_error("RequestPool", caught.value)
    assert "and 995 more errors" in message
    assert len(message) < 600
