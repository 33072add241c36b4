"""What IPAM accepts from a request, table by table: one canonical ASCII spelling of every number
and address, no zone indexes; and every refusal short, whatever the size of the input."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from ipam.addresses import parse_address, parse_range, parse_range_list, parse_subnet
from ipam.defaults import parse_default_pools
from ipam.errors import InvalidRequest, shown
from ipam.options import parse_pool_options, parse_pool_request
from ipam.requests import parse_address_request

HUGE = "x" * 900_000


def refusal(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(InvalidRequest) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return str(caught.value)


def pool_request(
    pool: str = "192.0.2.0/24",
    sub_pool: str = "",
    options: Mapping[str, str] | None = None,
    v6: bool = False,
) -> object:
    return parse_pool_request(
        address_space="local", pool=pool, sub_pool=sub_pool, options=options or {}, v6=v6
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("2001:db8::%eth0/64", "zone index"),
        ("2001:db8::%1/64", "zone index"),
        ("192.0.2.0/255.255.255.0", "prefix length"),
        ("192.0.2.0/024", "prefix length"),
        ("192.0.2.0/+24", "prefix length"),
        ("192.0.2.0/٢٤", "prefix length"),
        ("192.0.2.0/24 /24", "prefix length"),
        ("192.0.2.0/", "prefix length"),
        ("192.0.2.0/33", "prefix length"),
        ("2001:db8::/129", "prefix length"),
        ("١٩٢.0.2.0/24", "not an IPv4 or IPv6 address"),
    ],
)
def test_subnets_have_one_spelling(text: str, needle: str) -> None:
    assert needle in refusal(parse_subnet, text)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("192.0.2.0/24", "192.0.2.0/24"),
        (" 192.0.2.0/24 ", "192.0.2.0/24"),  # stripped on purpose, as every --ipam-opt value
        ("2001:DB8::/64", "2001:db8::/64"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("::ffff:192.0.2.0/120", "::ffff:c000:200/120"),
    ],
)
def test_subnets_in_that_spelling(text: str, canonical: str) -> None:
    assert str(parse_subnet(text)) == canonical


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pool": "2001:db8::%eth0/64", "v6": True},
        {"pool": "2001:db8::/64", "sub_pool": "2001:db8::%eth0/80", "v6": True},
        {"options": {"range.a": "2001:db8::%eth0/120"}},
        {"options": {"range.a": "2001:db8::1%eth0-2001:db8::9"}},
        {"options": {"exclude": "2001:db8::5%eth0"}},
        {"options": {"exclude": "192.0.2.0/24%eth0"}},
    ],
)
def test_zone_indexes_are_refused_in_pools_ranges_and_exclusions(
    kwargs: dict[str, object],
) -> None:
    assert "zone index" in refusal(pool_request, **kwargs)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"quarantine": "\u0661\u0660"}, "quarantine"),
        ({"quarantine": "1_0"}, "quarantine"),
        ({"quarantine": "+10"}, "quarantine"),
        ({"quarantine": "010"}, "quarantine"),
        ({"quarantine": "1e3"}, "quarantine"),
        ({"quarantine": "1."}, "quarantine"),
        ({"quarantine": "\u0661.\u0665"}, "quarantine"),
        ({"block_size": "٢٦"}, "block_size"),
        ({"block_size": "026"}, "block_size"),
        ({"block_size": "2_6"}, "block_size"),
        ({"block_size": "+26"}, "block_size"),
        ({"block_size6": "١٢٢"}, "block_size6"),
    ],
)
def test_numbers_in_options_are_plain_ascii_decimals(options: dict[str, str], key: str) -> None:
    assert f"invalid --ipam-opt {key}=" in refusal(parse_pool_options, options)


def test_numbers_in_options_that_are_fine() -> None:
    parsed = parse_pool_options({"quarantine": "0.5", "block_size": "/26", "block_size6": " 120 "})
    assert parsed.quarantine == 0.5
    assert parse_pool_options({"quarantine": "0"}).quarantine == 0
    assert parse_pool_options({"quarantine": "30"}).quarantine == 30


@pytest.mark.parametrize("text", ["192.0.2.0/24:٢٨", "192.0.2.0/24:028", "ula:٦٤", "ula:+64"])
def test_default_pool_sizes_are_plain_ascii_decimals(text: str) -> None:
    assert "the size after ':'" in refusal(parse_default_pools, text, node_name="hostA")


def test_addresses_refuse_zone_indexes_everywhere() -> None:
    assert "zone index" in refusal(parse_address, "2001:db8::1%eth0")
    assert "zone index" in refusal(parse_range, "2001:db8::1%eth0-2001:db8::9")
    assert "zone index" in refusal(parse_address_request, "2001:db8::1%1", {})


@pytest.mark.parametrize(
    ("mac", "recorded"),
    [
        ("02:42:C0:00:02:0A", "02:42:c0:00:02:0a"),
        ("٠٢:42:c0:00:02:0a", None),
        ("02:42:c0:00:02", None),
        (HUGE, None),
    ],
)
def test_only_a_well_formed_mac_is_recorded(mac: str, recorded: str | None) -> None:
    request = parse_address_request("", {"com.docker.network.endpoint.macaddress": mac})
    assert request.mac == recorded


def test_an_endpoint_name_is_bounded() -> None:
    name = {"com.docker.network.endpoint.name": "web"}
    assert parse_address_request("192.0.2.9", name).endpoint == "web"
    message = refusal(
        parse_address_request, "192.0.2.9", {"com.docker.network.endpoint.name": HUGE}
    )
    assert "900000 characters" in message
    assert len(message) < 300


@pytest.mark.parametrize(
    "call",
    [
        lambda: parse_subnet(HUGE),
        lambda: parse_subnet(HUGE + "/24"),
        lambda: parse_subnet("192.0.2.0/" + HUGE),
        lambda: parse_address(HUGE),
        lambda: parse_range(HUGE + "-" + HUGE),
        lambda: parse_range_list(HUGE + "," + HUGE, what="--ipam-opt exclude"),
        lambda: parse_default_pools(HUGE),
        lambda: parse_default_pools("192.0.2.0/24:" + HUGE),
        lambda: pool_request(pool=HUGE),
        lambda: pool_request(sub_pool=HUGE),
        lambda: pool_request(options={"lan": HUGE}),
        lambda: pool_request(options={HUGE: "1"}),
        lambda: pool_request(options={f"{HUGE}{i}": "1" for i in range(50)}),
        lambda: pool_request(options={"range." + HUGE: "192.0.2.0/26"}),
        lambda: pool_request(options={"range.a": HUGE}),
        lambda: pool_request(options={"nodes": HUGE + "/"}),
        lambda: pool_request(options={"nodes": "a," * 100_000 + "a"}),
        lambda: pool_request(options={"exclude": HUGE}),
        lambda: pool_request(options={"quarantine": HUGE}),
        lambda: pool_request(options={"block_size": HUGE}),
        lambda: parse_pool_request(address_space=HUGE, pool="", sub_pool="", options={}, v6=False),
    ],
)
def test_refusals_of_huge_values_are_short(call: object) -> None:
    assert len(refusal(call)) < 700


def test_shown_values_are_quoted_cut_and_counted() -> None:
    assert shown("lan1") == "'lan1'"
    assert shown("a\x00b") == "'a\\x00b'"
    text = shown("y" * 900_000)
    assert len(text) < 100
    assert "900000 characters" in text
