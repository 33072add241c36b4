"""Throwaway network namespaces, veth pairs and bridge "switches" for one test.

The lab model: a *host* is a namespace (running its own pymacvlan daemon via ``ip netns exec``),
its "physical" NIC is a veth end, and a *switch* is a namespace holding a bridge that the other ends
of those veths are enslaved to. Nothing is configured in the root namespace; the only root-namespace
objects the harness ever creates are veth ends (for a dockerd, which lives in the root namespace),
with harness-generated names, and they die with their peer's namespace.

Naming, so leftovers of a crashed run can be found and swept safely by a later run:

* namespaces: ``pmv-<pid>-<lab>-<label>`` (``<pid>`` is the pytest process);
* root-namespace veth ends: ``pv<pid base36>-<n base36>`` (short: ``.4094`` must still fit in 15).

Only documentation ranges go on interfaces; `Netns.add_address` refuses anything else.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import re
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .prereq import slow
from .proc import HarnessError, ManagedProcess, pid_alive

NETNS_PREFIX = f"pmv-{os.getpid()}-"
_NETNS_RE = re.compile(r"^pmv-(\d+)-")
_ROOT_LINK_RE = re.compile(r"^pv([0-9a-z]+)-[0-9a-z]+$")
_lab_ids = itertools.count()
_root_link_ids = itertools.count()

# RFC 5737 (TEST-NET-1/2/3), RFC 2544 (benchmarking), RFC 3849 (IPv6 documentation), loopback.
DOCUMENTATION_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "198.18.0.0/15",
        "2001:db8::/32",
        "127.0.0.0/8",
        "::1/128",
    )
)

Json = dict[str, Any]


def check_documentation_address(cidr: str) -> None:
    """Raise unless `cidr` (``192.0.2.1/24``) lies in a documentation or loopback range."""
    iface = ipaddress.ip_interface(cidr)
    if not any(iface.ip in net for net in DOCUMENTATION_NETWORKS):
        raise HarnessError(
            f"{cidr} is outside the documentation ranges; tests may only use 192.0.2.0/24, "
            "198.51.100.0/24, 203.0.113.0/24, 198.18.0.0/15 and 2001:db8::/32"
        )


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 60.0) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=slow(timeout))
    if check and result.returncode != 0:
        command = " ".join(argv)
        raise HarnessError(f"{command} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


class Netns:
    """A named network namespace (``ip netns``) and the commands that run inside it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Netns({self.name!r})"

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """`argv` wrapped to run inside this namespace (``ip netns exec``)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self,
        *argv: str,
        check: bool = True,
        timeout: float = 60.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the namespace and capture its output (text)."""
        result = subprocess.run(
            self.exec_argv(argv), capture_output=True, text=True, timeout=slow(timeout), input=input
        )
        if check and result.returncode != 0:
            raise HarnessError(
                f"in {self.name}: {' '.join(argv)} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def ip(self, *args: str, check: bool = True) -> str:
        """``ip -n <ns> <args>``; returns stdout."""
        return _run(["ip", "-n", self.name, *args], check=check)

    def ip_json(self, *args: str) -> list[Json]:
        """``ip -j -n <ns> <args>`` parsed, e.g. ``ip_json("-d", "link", "show")``."""
        out = _run(["ip", "-j", "-n", self.name, *args]).strip()
        parsed: list[Json] = json.loads(out) if out else []
        return parsed

    def links(self) -> list[Json]:
        """Every link with details (``linkinfo`` holds kind and kind-specific data)."""
        return self.ip_json("-d", "link", "show")

    def link(self, name: str) -> Json | None:
        """One link with details, or None if it does not exist."""
        return next((link for link in self.links() if link["ifname"] == name), None)

    def link_names(self) -> list[str]:
        """Names of every link in the namespace."""
        return [link["ifname"] for link in self.links()]

    def addresses(self, ifname: str | None = None) -> list[str]:
        """Global and link addresses as ``addr/prefixlen`` (optionally of one link)."""
        args = ["addr", "show"] + (["dev", ifname] if ifname else [])
        return [
            f"{info['local']}/{info['prefixlen']}"
            for link in self.ip_json(*args)
            for info in link.get("addr_info", [])
            if info.get("scope") != "host"
        ]

    def add_address(self, ifname: str, cidr: str) -> None:
        """Put `cidr` on `ifname` (documentation ranges only; IPv6 without DAD delay)."""
        check_documentation_address(cidr)
        extra = ["nodad"] if ipaddress.ip_interface(cidr).version == 6 else []
        self.ip("addr", "add", cidr, "dev", ifname, *extra)

    def set_up(self, *ifnames: str) -> None:
        """Bring links up."""
        for ifname in ifnames:
            self.ip("link", "set", ifname, "up")

    def ping(self, address: str, *, count: int = 1, timeout: float = 2.0) -> bool:
        """True if `address` answers `count` pings from inside the namespace."""
        check_documentation_address(address)
        result = self.run(
            "ping", "-c", str(count), "-W", str(timeout), "-i", "0.2", address, check=False
        )
        return result.returncode == 0

    def pids(self) -> list[int]:
        """Pids of processes running inside the namespace."""
        return [int(p) for p in _run(["ip", "netns", "pids", self.name], check=False).split()]

    def exists(self) -> bool:
        """True if the namespace is still there."""
        return Path("/run/netns", self.name).exists()


@dataclass
class Switch:
    """A bridge in its own namespace; every attached host gets a veth "cable" to a port."""

    lab: NetnsLab
    netns: Netns
    bridge: str = "br0"
    ports: list[str] = field(default_factory=list)

    def attach(self, host: Netns, host_if: str = "lan0") -> str:
        """Cable `host` to the switch; `host_if` is the host's "physical" NIC. Returns the port."""
        port = f"p{len(self.ports)}"
        self.lab.veth(host, host_if, self.netns, port)
        self._enslave(port)
        return port

    def attach_root(self) -> str:
        """Cable the root namespace (dockerd's) to the switch; returns the root end's name.

        Use the returned name as the ``parent`` of a Docker network: the root namespace gets a
        link, nothing else (no address, no route).
        """
        port = f"p{len(self.ports)}"
        root_if = self.lab.veth_to_root(self.netns, port)
        self._enslave(port)
        return root_if

    def _enslave(self, port: str) -> None:
        self.netns.ip("link", "set", port, "master", self.bridge, "up")
        self.ports.append(port)


class NetnsLab:
    """The namespaces, veths and processes one test created; `cleanup()` removes all of them."""

    def __init__(self, tmp_dir: Path | None = None) -> None:
        self.tag = f"{NETNS_PREFIX}{next(_lab_ids)}"
        self.tmp_dir = tmp_dir
        self.namespaces: list[Netns] = []
        self.root_links: list[str] = []
        self.processes: list[ManagedProcess] = []

    def netns(self, label: str) -> Netns:
        """Create namespace ``<tag>-<label>`` with loopback up."""
        ns = Netns(f"{self.tag}-{label}")
        _run(["ip", "netns", "add", ns.name])
        self.namespaces.append(ns)
        ns.set_up("lo")
        return ns

    def veth(self, a: Netns, a_if: str, b: Netns, b_if: str, *, up: bool = True) -> None:
        """A veth pair from `a_if` in `a` to `b_if` in `b` (created in place, never in root)."""
        a.ip("link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b.name)
        if up:
            a.set_up(a_if)
            b.set_up(b_if)

    def root_ifname(self) -> str:
        """A fresh root-namespace link name, unique on the machine and sweepable."""
        return f"pv{_base36(os.getpid())}-{_base36(next(_root_link_ids))}"

    def veth_to_root(self, ns: Netns, ns_if: str, *, up: bool = True) -> str:
        """A veth from `ns_if` in `ns` to a harness-named end in the root namespace (returned).

        The root end gets no address; it exists so that a root-namespace dockerd can use it as a
        macvlan/ipvlan parent.
        """
        root_if = self.root_ifname()
        peer = ["peer", "name", ns_if, "netns", ns.name]
        _run(["ip", "link", "add", root_if, "type", "veth", *peer])
        self.root_links.append(root_if)
        if up:
            _run(["ip", "link", "set", root_if, "up"])
            ns.set_up(ns_if)
        return root_if

    def switch(
        self, label: str = "sw", hosts: Sequence[Netns] = (), host_if: str = "lan0"
    ) -> Switch:
        """A bridge "switch" namespace with `hosts` attached through `host_if` each."""
        ns = self.netns(label)
        ns.ip("link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
        ns.set_up("br0")
        sw = Switch(self, ns)
        for host in hosts:
            sw.attach(host, host_if)
        return sw

    def spawn(
        self,
        ns: Netns | None,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
    ) -> ManagedProcess:
        """Start a long-running process inside `ns` (root namespace if None); stopped on cleanup."""
        proc = ManagedProcess(ns.exec_argv(argv) if ns else argv, log_path, env=env)
        proc.start()
        self.processes.append(proc)
        return proc

    def cleanup(self) -> None:
        """Stop processes, delete namespaces and root links; raise if something stayed behind."""
        problems: list[str] = []
        for proc in reversed(self.processes):
            try:
                proc.stop(timeout=10)
            except Exception as exc:
                problems.append(f"stopping {proc.argv}: {exc}")
        for ns in reversed(self.namespaces):
            problems += _delete_netns(ns)
        for link in self.root_links:
            if Path("/sys/class/net", link).exists():
                with contextlib.suppress(HarnessError):
                    _run(["ip", "link", "del", link])
            if Path("/sys/class/net", link).exists():
                problems.append(f"root-namespace link {link} could not be deleted")
        self.processes.clear()
        self.namespaces.clear()
        self.root_links.clear()
        if problems:
            raise HarnessError("lab cleanup left things behind: " + "; ".join(problems))


def _delete_netns(ns: Netns) -> list[str]:
    """Kill what still runs inside `ns` (it is ours: we created the namespace) and delete it."""
    if not ns.exists():
        return []
    for pid in ns.pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    result = subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, text=True)
    if result.returncode != 0 or ns.exists():
        return [f"netns {ns.name}: {result.stderr.strip()}"]
    return []


def own_leftovers() -> list[str]:
    """Namespaces and root links this pytest process created and did not remove."""
    names = [f"netns {name}" for name in list_netns() if name.startswith(NETNS_PREFIX)]
    mine = f"pv{_base36(os.getpid())}-"
    names += [f"link {link}" for link in root_link_names() if link.startswith(mine)]
    return names


def list_netns() -> list[str]:
    """Names of all named network namespaces on the machine."""
    return [line.split()[0] for line in _run(["ip", "netns", "list"]).splitlines() if line.strip()]


def root_link_names() -> list[str]:
    """Names of the links in the root namespace."""
    return sorted(os.listdir("/sys/class/net"))


def sweep_stale() -> list[str]:
    """Delete harness namespaces and root links left by test runs whose process is gone.

    Safe with other engineers' test runs in parallel: only names carrying a dead pid are touched.
    Returns what was removed.
    """
    removed = []
    for name in list_netns():
        match = _NETNS_RE.match(name)
        if match and not pid_alive(int(match.group(1))):
            _delete_netns(Netns(name))
            removed.append(f"netns {name}")
    for link in root_link_names():
        match = _ROOT_LINK_RE.match(link)
        if match and not pid_alive(int(match.group(1), 36)):
            subprocess.run(["ip", "link", "del", link], capture_output=True)
            removed.append(f"link {link}")
    return removed


def unexpected_root_links(allowed: Sequence[str] = ("lo", "eth0", "docker0")) -> list[str]:
    """Root-namespace links that are neither the machine's own nor another live test run's."""
    unexpected = []
    for link in root_link_names():
        match = _ROOT_LINK_RE.match(link)
        if link in allowed or link.startswith("ifb"):
            continue
        if match and int(match.group(1), 36) != os.getpid() and pid_alive(int(match.group(1), 36)):
            continue  # another engineer's test run, still in progress
        unexpected.append(link)
    return unexpected
