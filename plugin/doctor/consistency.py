"""The state against itself and against the host: what the daemon holds is what there is.

* `state`: the state could be loaded (or read);
* `owned-links`: every link pymacvlan recorded as its own (VLAN and dummy parents, host shims)
  is there with its mark, and no link with its mark lacks a record;
* `endpoint-links`: no endpoint link is left in the host's namespace without an endpoint (links
  of running containers are in the containers' namespaces, out of sight);
* `stale-allocations`: no address is held for an endpoint that no longer exists (the report's
  `stale_allocations`: the judge of plugin/admin/stale.py, which `pymacvlan gc` frees by, run
  without Docker on the daemon's memory or on the state directory read in-process);
* `stores-agree`: every endpoint's address is held by the IPAM (the comparison the daemon logs at
  start-up, plugin/state_check.py).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict

from driver.names import (
    ROLE_DUMMY,
    ROLE_ENDPOINT,
    ROLE_SHIM,
    ROLE_VLAN,
    is_endpoint_link_of,
    is_owned,
)
from ipam.sqlite_store import SqliteStore
from plugin.doctor.model import Check
from plugin.doctor.scene import Scene
from plugin.state_check import unheld_endpoint_addresses

MAX_LISTED = 8
_OWNED_ROLES = (ROLE_VLAN, ROLE_DUMMY, ROLE_SHIM)


def state_check(scene: Scene) -> Check:
    inputs, report = scene.inputs, scene.report
    subject = f"state in {report.state_dir}"
    if inputs.state_problem is not None:
        before_any = inputs.request.parent is not None
        return Check(
            name="state",
            subject=subject,
            verdict="skipped" if before_any else "problem",
            found=inputs.state_problem,
            todo="" if before_any else "give the daemon's --state-dir, or start the daemon",
        )
    where = f"{report.state_dir}"
    if report.health == "loading":
        return Check(
            name="state",
            subject=subject,
            verdict="skipped",
            found=f"the daemon is still loading its state ({where})",
            todo="run pymacvlan doctor again in a moment",
        )
    if report.health == "unusable":
        return Check(
            name="state",
            subject=subject,
            verdict="problem",
            found="; ".join(report.problems) or f"the state in {where} cannot be used",
            todo="see docs/install.md, Troubleshooting: the state",
        )
    held = (
        f"{len(report.networks)} network(s), {len(report.endpoints)} endpoint(s), "
        f"{len(report.allocations)} allocation(s)"
    )
    if report.problems:
        return Check(
            name="state",
            subject=subject,
            verdict="warning",
            found=f"{held}; " + "; ".join(report.problems),
        )
    return Check(name="state", subject=subject, verdict="ok", found=held)


def _not_loaded(scene: Scene, name: str, subject: str) -> Check | None:
    if scene.inputs.state_problem is not None or scene.report.health != "ready":
        return Check(
            name=name,
            subject=subject,
            verdict="skipped",
            found="the state is not loaded (see the state check)",
        )
    return None


def owned_links_check(scene: Scene) -> Check:
    subject = "links pymacvlan made"
    if (skipped := _not_loaded(scene, "owned-links", subject)) is not None:
        return skipped
    if scene.links_problem is not None:
        return Check(
            name="owned-links", subject=subject, verdict="skipped", found=scene.links_problem
        )
    problems: list[str] = []
    waiting: list[str] = []
    for record in scene.report.owned_links:
        link = scene.link(record.name)
        if link is None:
            if record.base and scene.link(record.base) is None:
                waiting.append(f"{record.name} waits for its parent {record.base}")
            else:
                problems.append(f"{record.name} ({record.kind}) is recorded but missing")
        elif not is_owned(link.alias):
            problems.append(
                f"{record.name} exists but is not pymacvlan's (alias {link.alias!r}): someone "
                "replaced it"
            )
    unrecorded: list[str] = []
    if scene.report.narrowed_to is None:
        recorded = {record.name for record in scene.report.owned_links}
        unrecorded = sorted(
            link.name
            for link in scene.links.values()
            if any(is_owned(link.alias, role) for role in _OWNED_ROLES)
            and link.name not in recorded
        )
    count = len(scene.report.owned_links)
    if problems:
        return Check(
            name="owned-links",
            subject=subject,
            verdict="problem",
            found=_listed(
                problems
                + waiting
                + [f"{n} carries pymacvlan's mark but no record owns it" for n in unrecorded]
            ),
            todo="restart the plugin: it makes its missing links again at start-up; a link "
            "someone replaced is theirs: rename or delete it, then restart the plugin",
        )
    if unrecorded:
        return Check(
            name="owned-links",
            subject=subject,
            verdict="warning",
            found=_listed(
                [
                    f"{n} carries pymacvlan's mark but no record owns it (left by a "
                    "state directory that was reset?)"
                    for n in unrecorded
                ]
                + waiting
            ),
            todo="if no network uses it: ip link del NAME",
        )
    if waiting:
        return Check(
            name="owned-links",
            subject=subject,
            verdict="warning",
            found=_listed(waiting),
            todo="the links are made when their parent appears",
        )
    return Check(
        name="owned-links",
        subject=subject,
        verdict="ok",
        found=f"all {count} recorded link(s) are there, and no other link has the mark",
    )


def endpoint_links_check(scene: Scene) -> Check:
    subject = "endpoint links"
    if (skipped := _not_loaded(scene, "endpoint-links", subject)) is not None:
        return skipped
    if scene.links_problem is not None:
        return Check(
            name="endpoint-links", subject=subject, verdict="skipped", found=scene.links_problem
        )
    if scene.report.narrowed_to is not None:
        return Check(
            name="endpoint-links",
            subject=subject,
            verdict="skipped",
            found="checked for the whole host only (without --network)",
        )
    records: dict[str, list[str]] = defaultdict(list)
    for endpoint in scene.report.endpoints:
        records[endpoint.link].append(endpoint.id)
    orphans = sorted(
        link.name
        for link in scene.links.values()
        if is_owned(link.alias, ROLE_ENDPOINT)
        and not any(is_endpoint_link_of(link.alias, e) for e in records.get(link.name, ()))
    )
    if orphans:
        return Check(
            name="endpoint-links",
            subject=subject,
            verdict="warning",
            found=_listed([f"{n} is an endpoint link that no endpoint owns" for n in orphans]),
            todo="restart the plugin (it deletes them at start-up), or ip link del NAME",
        )
    return Check(
        name="endpoint-links",
        subject=subject,
        verdict="ok",
        found="no endpoint link is left in the host's namespace without its endpoint "
        "(those in containers are not visible here)",
    )


def stale_allocations_check(scene: Scene) -> Check:
    subject = "allocations"
    if (skipped := _not_loaded(scene, "stale-allocations", subject)) is not None:
        return skipped
    report = scene.report  # judged without Docker, narrowed with the report
    stale = [s for s in report.stale_allocations if s.verdict == "stale"]
    suspect = [s for s in report.stale_allocations if s.verdict == "suspect"]
    also = f"; {len(suspect)} more may be ({suspect[0].reason})" if suspect else ""
    if not stale:
        return Check(
            name="stale-allocations",
            subject=subject,
            verdict="ok",
            found=f"no allocation is certainly stale{also}",
        )
    listed = [
        f"{s.address} of {s.subnet} ({s.kind}, {(report.generated_at - s.allocated_at) / 60:.0f} "
        f"min old): {s.reason}"
        for s in stale
    ]
    gc = "pymacvlan gc frees them (it asks Docker first)"
    return Check(
        name="stale-allocations",
        subject=subject,
        verdict="warning",
        found=f"{len(stale)} address(es) held for endpoints that no longer exist: "
        + _listed(listed)
        + also,
        # gc asks the running daemon to free them: it never writes a state file itself.
        todo=gc if report.source == "daemon" else f"start the daemon, then {gc}",
    )


def stores_agree_check(scene: Scene) -> Check:
    subject = "driver and IPAM state"
    if (skipped := _not_loaded(scene, "stores-agree", subject)) is not None:
        return skipped
    report = scene.report
    held: dict[str, set[str]] = defaultdict(set)
    for allocation in report.allocations:
        held[allocation.subnet].add(allocation.address)
    endpoints = [
        (endpoint.network_id, endpoint.id, ipaddress.ip_interface(cidr))
        for endpoint in report.endpoints
        for cidr in (endpoint.ipv4, endpoint.ipv6)
        if cidr is not None
    ]
    ipam_file = f"{report.state_dir.rstrip('/')}/{SqliteStore.FILE_NAME}"
    lines = unheld_endpoint_addresses(
        endpoints, {s: frozenset(a) for s, a in held.items()}, ipam_file
    )
    if lines:
        return Check(
            name="stores-agree",
            subject=subject,
            verdict="problem",
            found="; ".join(lines),
            todo="reconnect the container (docker network disconnect, connect) so that "
            "its address is allocated again, or restore the IPAM file from a backup",
        )
    return Check(
        name="stores-agree",
        subject=subject,
        verdict="ok",
        found=f"the IPAM holds the address of every endpoint ({len(endpoints)})",
    )


def _listed(lines: list[str]) -> str:
    more = f"; and {len(lines) - MAX_LISTED} more" if len(lines) > MAX_LISTED else ""
    return "; ".join(lines[:MAX_LISTED]) + more
