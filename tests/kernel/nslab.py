"""Namespaces for the link-layer tests (tests/kernel/test_netlink*.py and, in the virtme-ng guest,
tests/guest/test_netlink_guest.py): made per test, deleted with everything inside them."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from driver.linkinfo import LinkInfo
from driver.netlink import LinkLayer


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True)


def ns_sh(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *args, check=check)


def ip_link_json(ns: str, name: str) -> dict[str, Any]:
    """The kernel's view as iproute2 prints it: an independent read-back."""
    out = sh("ip", "-n", ns, "-j", "-d", "link", "show", "dev", name).stdout
    result: dict[str, Any] = json.loads(out)[0]
    return result


async def read(links: LinkLayer, name: str) -> LinkInfo:
    """``get_link`` for a link the test knows exists."""
    link = await links.get_link(name)
    assert link is not None, f"link {name} is missing"
    return link


def link_names(ns: str) -> set[str]:
    return {link["ifname"] for link in json.loads(sh("ip", "-n", ns, "-j", "link").stdout)}


@dataclass
class Lab:
    """Namespaces made for one test; ``delete_all`` removes them and everything inside."""

    tag: str
    namespaces: list[str] = field(default_factory=list)

    def namespace(self, role: str) -> str:
        # "pmv-<pid>-" like the harness's own namespaces, so a crashed run's leftovers get swept.
        name = f"pmv-{os.getpid()}-{self.tag}-{role}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def delete_all(self) -> None:
        for name in reversed(self.namespaces):
            sh("ip", "netns", "del", name, check=False)
        self.namespaces.clear()

    @property
    def host(self) -> str:
        return self.namespaces[0]

    @property
    def lan(self) -> str:
        return self.namespaces[1]


@contextlib.contextmanager
def cabled_lab(*, switch: bool = False) -> Iterator[Lab]:
    """A "host" namespace whose "physical" parent ``lab0`` is a veth to ``lan0`` in a "lan"
    namespace, both up; with ``switch``, ``lan0`` is a port of bridge ``br0`` (192.0.2.1/24),
    the LAN's switch and a host on it. Deleted with everything in it, also when the test fails.
    """
    lab = Lab(tag=uuid.uuid4().hex[:6])
    try:
        host, lan = lab.namespace("host"), lab.namespace("lan")
        sh("ip", "-n", host, "link", "add", "lab0", "type", "veth", "peer", "name", "lan0")
        sh("ip", "-n", host, "link", "set", "lan0", "netns", lan)
        up = [(host, "lab0"), (lan, "lan0")]
        if switch:
            sh("ip", "-n", lan, "link", "add", "br0", "type", "bridge")
            sh("ip", "-n", lan, "link", "set", "lan0", "master", "br0")
            sh("ip", "-n", lan, "addr", "add", "192.0.2.1/24", "dev", "br0")
            up.append((lan, "br0"))
        for ns, dev in up:
            sh("ip", "-n", ns, "link", "set", dev, "up")
        yield lab
    finally:
        lab.delete_all()
