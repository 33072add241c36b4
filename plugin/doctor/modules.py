"""The kernel can make the links the networks need: macvlan, ipvlan, 802.1q VLAN.

Each kind is checked once, for the networks that need it. Checking a parent before any network
(``--parent``), every kind is reported, and a missing one is a warning: no network needs it yet.
"""

from __future__ import annotations

from driver.diagnose.kernel_modules import KIND_MODULES, module_facts
from plugin.admin.report import NetworkStatus
from plugin.doctor.model import Check
from plugin.doctor.scene import Scene, ids


def kinds_needed(networks: list[NetworkStatus]) -> dict[str, list[NetworkStatus]]:
    """Link kind -> the networks that need it: their own kind, and 8021q for a VLAN parent."""
    needed: dict[str, list[NetworkStatus]] = {}
    for network in networks:
        for kind in [network.kind] + (["vlan"] if network.vlan is not None else []):
            needed.setdefault(kind, []).append(network)
    return needed


def module_checks(scene: Scene) -> list[Check]:
    needed = kinds_needed(scene.networks())
    before_any = scene.inputs.request.parent is not None and not needed
    kinds = list(KIND_MODULES) if before_any else [k for k in KIND_MODULES if k in needed]
    return [module_check(scene, kind, needed.get(kind, [])) for kind in kinds]


def module_check(scene: Scene, kind: str, networks: list[NetworkStatus]) -> Check:
    facts = module_facts(kind, scene.kinds_seen, scene.host.kernel_files)
    subject = f"kernel module {facts.module}"
    what = {"vlan": "802.1q VLAN links", "ipvlan": "ipvlan links", "macvlan": "macvlan links"}[kind]
    users = f" ({'1 network needs' if len(networks) == 1 else f'{len(networks)} networks need'} it)"
    on = ids(networks)
    if facts.availability in ("loaded", "builtin", "in use", "loadable"):
        how = {
            "loaded": "loaded",
            "builtin": "built into the kernel",
            "in use": "available",
            "loadable": "not loaded; the kernel loads it the first time such a link is made",
        }[facts.availability]
        return Check(
            name="kernel-module",
            subject=subject,
            verdict="ok",
            found=f"{what}: {facts.module} is {how} ({facts.evidence})"
            + (users if networks else ""),
            networks=on,
        )
    verdict = "problem" if networks else "warning"
    if facts.availability == "missing":
        return Check(
            name="kernel-module",
            subject=subject,
            verdict=verdict,
            found=f"the running kernel cannot make {what}: {facts.evidence}"
            + (users if networks else ""),
            todo=f"install a kernel with {facts.module} (Debian, Ubuntu: the distribution's "
            f"standard kernel has it), or use networks that do not need it",
            networks=on,
        )
    return Check(
        name="kernel-module",
        subject=subject,
        verdict="warning",
        found=f"cannot tell whether the kernel can make {what}: {facts.evidence}"
        + (users if networks else ""),
        todo=f"on the host: modprobe {facts.module} (an error says the kernel lacks it)",
        networks=on,
    )
