"""Prerequisites of a test layer: skip with the reason outside CI, fail under ``CI=true``.

A layer that cannot run on a developer's machine (not root, no dockerd, a kernel without VLAN)
skips and says why. In CI the machine is supposed to have everything, so a missing prerequisite is
a broken CI setup and must fail loudly instead of turning into a silent skip.
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import subprocess

import pytest

# Set by tests/harness/guest_init.sh inside the virtme-ng guest.
GUEST_ENV = "PYMACVLAN_IN_GUEST"

_probe_ids = itertools.count()


def in_ci() -> bool:
    """True when running under CI (``CI=true``, as GitHub, GitLab and our CI set it)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def in_guest() -> bool:
    """True inside the virtme-ng guest started by `tests.harness.guest`."""
    return os.environ.get(GUEST_ENV) == "1"


def slow(seconds: float) -> float:
    """A timeout in host seconds, stretched for where we run.

    The virtme-ng guest runs under software emulation: a Python process takes tens of seconds to
    start there, dockerd a minute. Harness timeouts go through this, so the same numbers hold on
    both sides. ``PYMACVLAN_SLOWDOWN`` overrides the factor (default 1 on the host, 10 in the
    guest).
    """
    factor = os.environ.get("PYMACVLAN_SLOWDOWN")
    return seconds * (float(factor) if factor else 10.0 if in_guest() else 1.0)


def require(condition: bool, reason: str) -> None:
    """Continue if `condition` holds; otherwise skip (or fail under CI) with `reason`."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"CI prerequisite missing: {reason}", pytrace=False)
    pytest.skip(reason)


def require_root() -> None:
    """The test needs root (network namespaces, links, dockerd)."""
    require(os.geteuid() == 0, "needs root (run ./tests/run as root)")


def require_command(name: str) -> str:
    """The test needs `name` on PATH; returns its full path."""
    path = shutil.which(name)
    require(
        path is not None,
        f"needs the command {name!r} (tests/install-deps installs it, as ./tests/run does)",
    )
    assert path is not None
    return path


def require_kernel_kind(kind: str) -> None:
    """The test needs link kind `kind` (``vlan``, ``ipvlan``, ``dummy``, ...) in this kernel."""
    require_root()
    require_command("ip")
    where = "the virtme-ng guest" if in_guest() else "this kernel (tests/guest runs in a guest)"
    require(kernel_supports(kind), f"link type {kind!r} is not available in {where}")


@functools.cache
def kernel_supports(kind: str) -> bool:
    """Probe, in a throwaway namespace, whether ``ip link add ... type <kind>`` works here.

    Kinds that need a parent (vlan, macvlan, ipvlan, macvtap) get a veth inside the namespace.
    Nothing is created outside that namespace, and it is deleted before returning.
    """
    # Named like every harness namespace, so a crashed run's leftover is swept (see netns.py).
    ns = f"pmv-{os.getpid()}-probe{next(_probe_ids)}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        subprocess.run(
            ["ip", "-n", ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1"],
            check=True,
            capture_output=True,
        )
        args = {
            "vlan": ["link", "p0", "name", "probe0", "type", "vlan", "id", "10"],
            "macvlan": ["link", "p0", "name", "probe0", "type", "macvlan", "mode", "bridge"],
            "macvtap": ["link", "p0", "name", "probe0", "type", "macvtap", "mode", "bridge"],
            "ipvlan": ["link", "p0", "name", "probe0", "type", "ipvlan", "mode", "l2"],
        }.get(kind, ["probe0", "type", kind])
        result = subprocess.run(["ip", "-n", ns, "link", "add", *args], capture_output=True)
        return result.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
