"""`POST /pymacvlan/v1/doctor`: the daemon runs `pymacvlan doctor`'s checks where it lives.

The checks need what the daemon has: the host's network namespace (a managed plugin runs with
host networking), CAP_NET_ADMIN to make the short-lived test link, CAP_NET_RAW for its frames,
and the claims it has seen. Body, every field optional:

    {"parent": "eth0", "network": "<id or unique prefix>", "gateway": "192.0.2.1"}

The answer is a `DoctorReport` (plugin/doctor/model.py), 200 whatever the verdicts: a problem
found is an answer, not an error. 400 for a body that is not one of these (an unknown network,
a parent name no link can have, a gateway that is not an address).
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from driver.netlink import LinkLayer
from plugin.admin.narrow import NoSuchNetwork
from plugin.admin.status import live_report
from plugin.doctor.runner import diagnose
from plugin.doctor.scene import Host, Inputs, parse_request
from plugin.errors import MalformedRequest, describe_validation_error
from plugin.services import SERVICES, SETTINGS
from plugin.transport import read_body

MAX_FIELD_CHARACTERS = 256  # a link name is 15, an id 64, an IPv6 address 45


class DoctorRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    parent: str | None = Field(default=None, max_length=MAX_FIELD_CHARACTERS)
    network: str | None = Field(default=None, max_length=MAX_FIELD_CHARACTERS)
    gateway: str | None = Field(default=None, max_length=MAX_FIELD_CHARACTERS)


async def handle(request: web.Request) -> web.Response:
    body = await read_body(request)
    try:
        wire = DoctorRequest.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise MalformedRequest(describe_validation_error("doctor", exc)) from None
    asked = parse_request(wire.parent, wire.network, wire.gateway)
    services, settings = request.app[SERVICES], request.app[SETTINGS]
    try:
        report = await live_report(services, settings, asked.network)
    except NoSuchNetwork as exc:
        raise MalformedRequest(str(exc)) from None
    driver = services.driver
    links = driver.links
    host = Host(
        links=links,
        on_kernel=isinstance(links, LinkLayer),
        netns=links.netns if isinstance(links, LinkLayer) else None,
        exclusive=driver.exclusively,
    )
    inputs = Inputs(where="daemon", report=report, host=host, request=asked)
    result = await diagnose(inputs)
    return web.json_response(result.model_dump(mode="json"))
