"""Probing before hand-out (issue 9, part 1) with a real dockerd: a device nobody told pymacvlan
about holds the first address of the network; `docker run` gets another one, and `--ip` of the
held address fails with the device's MAC in the error text.

Two `docker run`s on purpose: each e2e second counts three times in CI (three engines).
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Plugin
from tests.e2e.test_macvlan_e2e import LAN_PEER, Lan, lan, net  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e

HELD = "192.0.2.1"  # the first address of the network: automatic allocation's first candidate


def test_an_address_held_on_the_lan_is_skipped_and_refused_with_its_mac(
    unmanaged_plugin: Plugin,
    busybox_image: str,
    lan: Lan,  # noqa: F811
) -> None:
    p = unmanaged_plugin
    # The LAN's machine (the router at .254) also holds .1: a device no one listed anywhere.
    lan.peer.add_address("wire0", f"{HELD}/24")
    link = lan.peer.link("wire0")
    assert link is not None
    mac = str(link["address"])
    net(
        p,
        "probed",
        "--subnet",
        "192.0.2.0/24",
        "--gateway",
        LAN_PEER,
        "-o",
        f"parent={lan.parent}",
    )

    shown = p.docker(
        "run", "--rm", "--network", "probed", busybox_image, "ip", "-o", "-4", "addr", "show"
    )
    assert "inet 192.0.2.2/24" in shown, shown  # .1 answered the probe: skipped

    # Docker 20.10 sends `--ip` without the endpoint's name: it is probed all the same.
    err = p.fails("run", "--rm", "--network", "probed", "--ip", HELD, busybox_image, "true")
    assert f"Address already in use on the LAN: {HELD} answers from MAC {mac}" in err

    assert p.daemon is not None
    log = p.daemon.log()
    assert f'event="address in use on the LAN" address={HELD} mac={mac}' in log, log[-2000:]
