"""`POST /pymacvlan/v1/gc`: free the allocations that are certainly stale.

The command line (`pymacvlan gc`) asks Docker's engine and sends what it said; the daemon never
calls the engine (a plugin that does deadlocks dockerd while it starts). Body, every field
optional:

    {"docker": {"asked_at": 1767225600.0, "subnets": {"192.0.2.0/24": ["192.0.2.1", ...]}},
     "docker_problem": "why Docker could not be asked", "grace_seconds": 600, "dry_run": false}

`docker` absent or null: Docker could not be asked, and only what the driver's own endpoints make
certain is freed (plugin/admin/stale.py). Each allocation freed goes through the IPAM's release
path (quarantine, a DHCP lease given back on the LAN), refused if it changed since it was judged,
and is logged on one line. The answer lists what was freed (or would be, with `dry_run`), what
is suspect and why, what is kept because it is young, and counts the rest by reason.
"""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ipam.addresses import Subnet, parse_address, parse_subnet
from ipam.errors import InvalidRequest
from ipam.stale import DEFAULT_GRACE_SECONDS, Outcome, Verdict, Why
from plugin.admin.stale import NOT_ASKED, DockerView, verdicts
from plugin.errors import MalformedRequest, describe_validation_error
from plugin.logs import cut, get_logger
from plugin.services import SERVICES, Services
from plugin.transport import read_body
from plugin.wire.base import MAX_ADDRESS_LENGTH

log = get_logger("pymacvlan.gc")

MAX_GRACE_SECONDS = 10 * 365 * 86400.0
MAX_PROBLEM_CHARACTERS = 2000
# Kept allocations listed one by one (the others are only counted): they may become stale.
_LISTED_KEPT = (Why.YOUNG, Why.AFTER_ASKED)

Address = Annotated[str, StringConstraints(max_length=MAX_ADDRESS_LENGTH)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DockerWire(_Strict):
    asked_at: float
    subnets: dict[Address, list[Address]] = Field(default_factory=dict)


class GcRequest(_Strict):
    docker: DockerWire | None = None
    docker_problem: str = Field(default="", max_length=MAX_PROBLEM_CHARACTERS)
    grace_seconds: float = Field(default=DEFAULT_GRACE_SECONDS, ge=0, le=MAX_GRACE_SECONDS)
    dry_run: bool = False


async def handle(request: web.Request) -> web.Response:
    body = await read_body(request)
    try:
        parsed = GcRequest.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise MalformedRequest(describe_validation_error("gc", exc)) from None
    docker = docker_view(parsed.docker)
    services = request.app[SERVICES]
    await services.wait_ready()
    answer = await collect(
        services,
        docker,
        grace=parsed.grace_seconds,
        dry_run=parsed.dry_run,
        docker_problem=parsed.docker_problem or NOT_ASKED,
    )
    return web.json_response(answer)


def docker_view(wire: DockerWire | None) -> DockerView | None:
    """The wire's text as subnets and addresses; InvalidRequest (400) for what is not one."""
    if wire is None:
        return None
    subnets: dict[Subnet, frozenset[int]] = {}
    for text, addresses in wire.subnets.items():
        subnet = parse_subnet(text, what="subnet in Docker's view")
        values: set[int] = set()
        for address in addresses:
            family, value = parse_address(address, what=f"address in Docker's view of {subnet}")
            if family is not subnet.family:
                raise InvalidRequest(
                    f"address {cut(address, 64)} in Docker's view of {subnet} is not an "
                    f"{subnet.family.label} address"
                )
            values.add(value)
        subnets[subnet] = frozenset(values) | subnets.get(subnet, frozenset())
    return DockerView(wire.asked_at, subnets)


async def collect(
    services: Services,
    docker: DockerView | None,
    *,
    grace: float,
    dry_run: bool,
    docker_problem: str = NOT_ASKED,
) -> dict[str, Any]:
    """Judge every allocation, free the stale ones (unless `dry_run`); the answer's JSON."""
    judged = verdicts(services, docker, grace=grace, docker_problem=cut(docker_problem, 500))
    listed: list[dict[str, Any]] = []
    kept: dict[str, int] = {}
    freed = 0
    for verdict in judged:
        if verdict.outcome is Outcome.KEPT:
            kept[verdict.why.value] = kept.get(verdict.why.value, 0) + 1
            if verdict.why in _LISTED_KEPT:
                listed.append(_item(verdict, "kept"))
            continue
        if verdict.outcome is Outcome.SUSPECT:
            listed.append(_item(verdict, "suspect"))
            continue
        if dry_run:
            listed.append(_item(verdict, "would_free"))
            continue
        if await services.ipam.release_judged(verdict.allocation):
            freed += 1
            _log_freed(verdict)
            listed.append(_item(verdict, "freed"))
        else:
            listed.append(
                _item(verdict, "changed", "changed since it was judged (released, or taken again)")
            )
    log.info(
        "gc",
        docker=docker is not None,
        dry_run=dry_run,
        grace_s=grace,
        judged=len(judged),
        freed=freed,
        suspect=sum(1 for v in judged if v.outcome is Outcome.SUSPECT),
    )
    return {
        "docker": docker is not None,
        "dry_run": dry_run,
        "grace_seconds": grace,
        "judged": len(judged),
        "allocations": listed,
        "kept": kept,
    }


def _item(verdict: Verdict, action: str, reason: str | None = None) -> dict[str, Any]:
    record = verdict.allocation
    return {
        "action": action,
        "address": record.address,
        "subnet": str(verdict.subnet),
        "pool_id": record.pool_id,
        "kind": record.kind.value,
        "endpoint": record.endpoint,
        "mac": record.mac,
        "allocated_at": record.allocated_at,
        "age_seconds": round(verdict.age, 1),
        "why": verdict.why.value,
        "reason": reason or verdict.reason,
    }


def _log_freed(verdict: Verdict) -> None:
    record = verdict.allocation
    log.warning(
        "stale allocation freed",
        address=record.address,
        pool=record.pool_id,
        kind=record.kind.value,
        endpoint=record.endpoint,
        age_s=round(verdict.age, 1),
        why=verdict.reason,
    )
