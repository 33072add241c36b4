"""Turns a typed handler into an aiohttp route: body → request model → handler → response model.

Every protocol method goes through here, so parsing, readiness, logging, the response format and
the calls' metrics (plugin/metrics.py) are written once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from aiohttp import web
from pydantic import ValidationError

from plugin.errors import (
    PLUGIN_CONTENT_TYPE,
    MalformedRequest,
    PluginError,
    describe_validation_error,
)
from plugin.logs import cut, get_logger
from plugin.metrics import FAILED, METRICS, OK, outcome_of
from plugin.services import SERVICES, Services
from plugin.transport import IncompleteRequest, read_body
from plugin.wire.base import WireRequest, WireResponse

log = get_logger("pymacvlan.rpc")

Req = TypeVar("Req", bound=WireRequest)

# Request fields worth seeing in every log line of a call.
_LOGGED_FIELDS = ("network_id", "endpoint_id", "pool_id", "pool", "sub_pool", "address")
_LOGGED_ID_CHARACTERS = 256  # above any id Docker or we make (PoolIDs: 168)


@dataclass(frozen=True)
class Method(Generic[Req]):
    """One protocol method: ``/<name>`` answered by ``call`` with a ``request`` model."""

    name: str
    request: type[Req]
    call: Callable[[Services, Req], Awaitable[WireResponse]]
    # Activate and the capability probes must answer before the state is loaded.
    needs_state: bool = True

    def route(self) -> web.RouteDef:
        return web.post("/" + self.name, self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        outcome = FAILED  # also when cancelled: Docker went away, tired of waiting
        try:
            response = await self._answer(request, started)
            outcome = OK
            return response
        except Exception as exc:
            outcome = outcome_of(exc)
            raise
        finally:
            request.app[METRICS].observe_call(self.name, outcome, time.monotonic() - started)

    async def _answer(self, request: web.Request, started: float) -> web.Response:
        short = self.name.split(".", 1)[-1]
        with structlog.contextvars.bound_contextvars(method=self.name):
            try:
                # Bounded in time: a client that stops half-way does not hold the handler.
                body = await read_body(request)
            except IncompleteRequest as incomplete:
                _log_failure(incomplete, started)
                raise
            try:
                parsed = self.request.model_validate_json(body or b"{}")
            except ValidationError as exc:
                error = MalformedRequest(describe_validation_error(short, exc))
                _log_failure(error, started)
                raise error from None
            ids = _ids(parsed)
            with structlog.contextvars.bound_contextvars(**ids):
                services = request.app[SERVICES]
                try:
                    if self.needs_state:
                        await services.wait_ready()
                    response = await self.call(services, parsed)
                except Exception as exc:
                    _log_failure(exc, started)
                    raise
                log.info("ok", ms=_ms(started))
                return web.json_response(response.to_wire(), content_type=PLUGIN_CONTENT_TYPE)


def _ids(parsed: WireRequest) -> dict[str, Any]:
    """The request's ids for every log line of the call; cut, as they are the caller's text."""
    return {
        k: cut(v, _LOGGED_ID_CHARACTERS) for k in _LOGGED_FIELDS if (v := getattr(parsed, k, None))
    }


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 2)


def _log_failure(exc: Exception, started: float) -> None:
    if getattr(exc, "caller_fault", False):
        log.warning("refused", error=str(exc), ms=_ms(started))
    elif isinstance(exc, PluginError) or hasattr(exc, "caller_fault"):
        log.error("failed", error=str(exc), ms=_ms(started))
    # anything else is a bug: the error middleware logs it with its traceback
