"""Runs every check and gathers the report; a check that crashes is that check's problem.

The order of the report is the order a reader follows: the state, then each parent (exists, up,
carrier, Wi-Fi, port of something), what the kernel can make, the LAN (child MAC, host shim),
each network (MTU, claims, conflicts), and last the state against the host. The child-MAC test
runs before the module check so that a test link the kernel made counts as proof of macvlan.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from plugin.doctor import claims, consistency, modules, parent, wire
from plugin.doctor.model import Check, DoctorReport
from plugin.doctor.scene import Inputs, network_subject, read_scene
from plugin.logs import get_logger

log = get_logger("pymacvlan.doctor")

Job = Callable[[], Awaitable[Sequence[Check]]]


async def diagnose(inputs: Inputs) -> DoctorReport:
    scene = await read_scene(inputs)
    networks = scene.networks()
    state = await _guarded("state", "state", _one(consistency.state_check, scene))
    parents: list[Check] = []
    for name in scene.parents():
        parents += await _guarded(
            "parent", f"parent {name}", _many(parent.parent_checks, scene, name)
        )
    for network in networks:
        if network.vlan is not None:
            parents += await _guarded(
                "parent",
                f"VLAN link {network.link}",
                _many(parent.vlan_link_checks, scene, network),
            )
    lan = await _guarded("child-mac", "the LAN", functools.partial(wire.child_mac_checks, scene))
    lan += await _guarded("host-shim", "host shims", functools.partial(wire.shim_checks, scene))
    kernel = await _guarded("kernel-module", "kernel", _many(modules.module_checks, scene))
    per_network: list[Check] = []
    for network in networks:
        subject = network_subject(network)
        per_network += await _guarded("mtu", subject, _one(parent.mtu_check, scene, network))
        per_network += await _guarded(
            "address-claims", subject, _one(claims.claims_check, scene, network)
        )
        per_network += await _guarded(
            "lan-conflicts", subject, _one(claims.lan_conflicts_check, scene, network)
        )
    held: list[Check] = []
    for name, check in (
        ("owned-links", consistency.owned_links_check),
        ("endpoint-links", consistency.endpoint_links_check),
        ("stale-allocations", consistency.stale_allocations_check),
        ("stores-agree", consistency.stores_agree_check),
    ):
        held += await _guarded(name, name, _one(check, scene))
    return DoctorReport(
        where=inputs.where,
        generated_at=time.time(),
        state_dir=inputs.report.state_dir or None,
        checks=[*state, *parents, *kernel, *lan, *per_network, *held],
    )


def _one(check: Callable[..., Check], *args: Any) -> Job:
    async def job() -> Sequence[Check]:
        return [check(*args)]

    return job


def _many(check: Callable[..., Sequence[Check]], *args: Any) -> Job:
    async def job() -> Sequence[Check]:
        return check(*args)

    return job


async def _guarded(name: str, subject: str, job: Job) -> list[Check]:
    """The checks `job` makes; if it raises, one problem saying so (and the traceback in the
    log: it is a bug of ours)."""
    try:
        return list(await job())
    except Exception as exc:
        log.exception("a doctor check failed", check=name, subject=subject)
        return [
            Check(
                name=name,
                subject=subject,
                verdict="problem",
                found=f"the check itself failed: {type(exc).__name__}: {str(exc)[:300]}",
                todo="report it to pymacvlan's maintainers, with the plugin's log",
            )
        ]
