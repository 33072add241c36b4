"""Wire models: Docker's spelling in, Docker's spelling out, strict types, Go's nulls."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from plugin.errors import describe_validation_error
from plugin.wire import ipam, network


def test_go_nulls_mean_empty() -> None:
    req = network.CreateNetworkRequest.model_validate_json(
        b'{"NetworkID":"n","Options":null,"IPv4Data":null,"IPv6Data":null}'
    )
    assert req.options == {}
    assert req.ipv4_data == []


def test_unknown_fields_from_newer_engines_are_ignored() -> None:
    req = ipam.RequestAddressRequest.model_validate_json(b'{"PoolID":"p","Future":1}')
    assert req.pool_id == "p"


def test_types_are_strict() -> None:
    with pytest.raises(ValidationError):
        ipam.RequestPoolRequest.model_validate_json(b'{"V6":"true"}')
    with pytest.raises(ValidationError):
        ipam.RequestPoolRequest.model_validate_json(b'{"Pool":1}')


def test_required_ids_must_be_there_and_not_empty() -> None:
    with pytest.raises(ValidationError):
        network.EndpointRequest.model_validate_json(b'{"NetworkID":"n"}')
    with pytest.raises(ValidationError):
        ipam.ReleasePoolRequest.model_validate_json(b'{"PoolID":""}')


def test_responses_use_dockers_field_names() -> None:
    join = network.JoinResponse(
        interface_name=network.InterfaceName(src_name="pmvx", dst_prefix="eth"),
        static_routes=[network.StaticRoute(destination="0.0.0.0/0", route_type=1)],
    )
    assert join.to_wire() == {
        "InterfaceName": {"SrcName": "pmvx", "DstPrefix": "eth"},
        "Gateway": "",
        "GatewayIPv6": "",
        "StaticRoutes": [{"Destination": "0.0.0.0/0", "RouteType": 1, "NextHop": ""}],
        "DisableGatewayService": False,
    }
    assert ipam.CapabilitiesResponse(
        requires_mac_address=False, requires_request_replay=False
    ).to_wire() == {"RequiresMACAddress": False, "RequiresRequestReplay": False}


def test_validation_errors_name_the_field_and_cut_hostile_values() -> None:
    with pytest.raises(ValidationError) as caught:
        ipam.RequestPoolRequest.model_validate_json(
            b'{"Options":{"x":' + b'"' + b"a" * 10 + b'", "y": ' + b"1" * 200 + b"}}"
        )
    text = describe_validation_error("RequestPool", caught.value)
    assert text.startswith("malformed RequestPool request: Options.y: Input should be")
    assert len(text) < 200
