"""The stored record of a link the plugin owns: typed modes, and records of older versions."""

from __future__ import annotations

import json

import pytest

from driver.errors import StoreError
from driver.records import OwnedLink, owned_link_from_json, owned_link_to_json

# As versions before typed modes wrote them (json.dumps(OwnedLink.__dict__)).
OLD_RECORDS = [
    (
        '{"name": "pmvh-0123456789", "kind": "macvlan", "alias": "pymacvlan:shim:lab0", '
        '"base": "lab0", "vlan_id": 0, "mode": "bridge"}',
        OwnedLink(
            "pmvh-0123456789", "macvlan", "pymacvlan:shim:lab0", "lab0", macvlan_mode="bridge"
        ),
    ),
    (
        '{"name": "pmvh-0123456789", "kind": "ipvlan", "alias": "pymacvlan:shim:lab0", '
        '"base": "lab0", "vlan_id": 0, "mode": "l3/private"}',
        OwnedLink(
            "pmvh-0123456789",
            "ipvlan",
            "pymacvlan:shim:lab0",
            "lab0",
            ipvlan_mode="l3",
            ipvlan_flag="private",
        ),
    ),
    (
        '{"name": "lab0.10", "kind": "vlan", "alias": "pymacvlan:vlan:lab0.10", "base": "lab0", '
        '"vlan_id": 10, "mode": ""}',
        OwnedLink("lab0.10", "vlan", "pymacvlan:vlan:lab0.10", "lab0", 10),
    ),
    (
        '{"name": "dm-0123456789ab", "kind": "dummy", "alias": "pymacvlan:dummy:dm-0123456789ab", '
        '"base": "", "vlan_id": 0, "mode": ""}',
        OwnedLink("dm-0123456789ab", "dummy", "pymacvlan:dummy:dm-0123456789ab"),
    ),
]


@pytest.mark.parametrize(("text", "link"), OLD_RECORDS)
def test_records_of_older_versions_load_with_typed_modes(text: str, link: OwnedLink) -> None:
    assert owned_link_from_json(text) == link


@pytest.mark.parametrize("link", [link for _, link in OLD_RECORDS])
def test_records_round_trip_without_a_mode_string(link: OwnedLink) -> None:
    text = owned_link_to_json(link)
    assert "mode" not in json.loads(text)
    assert owned_link_from_json(text) == link


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"kind": "bridge"},
            "the record of owned link pmvh-0123456789 has an unknown kind 'bridge'",
        ),
        ({"mode": "fast"}, "has an unknown macvlan mode 'fast'"),
        ({"kind": "ipvlan", "mode": "l2"}, "has an unknown ipvlan flag ''"),
        ({"kind": "ipvlan", "mode": "l4/bridge"}, "has an unknown ipvlan mode 'l4'"),
    ],
)
def test_a_record_this_code_cannot_read_is_refused_by_name(
    change: dict[str, str], message: str
) -> None:
    record = json.loads(OLD_RECORDS[0][0]) | change
    with pytest.raises(StoreError, match=message):
        owned_link_from_json(json.dumps(record))
