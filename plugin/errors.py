"""The one place where exceptions become protocol answers.

libnetwork's plugin client reads ``{"Err": "..."}`` from any non-200 answer and shows it to the
user. The rule (checked in moby's pkg/plugins/client.go and drivers/remote): a request we cannot
parse or whose values are invalid is the caller's fault → 400; every other failure → 500; an
unknown method → 404, because Docker reads 404 as "not implemented". Never an error in a 200 (on
a 200 Docker reads IPAM errors from ``Error`` but driver errors from ``Err``: a mix-up is silent).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError

from driver.errors import DriverError
from ipam.errors import IpamError
from plugin.logs import get_logger

PLUGIN_CONTENT_TYPE = "application/vnd.docker.plugins.v1+json"

_SHOWN_ERRORS = 5  # of one malformed request: the first few say enough
_SHOWN_KEY = 40
# The net under every message: each domain cuts the values it quotes (ipam.errors.shown,
# driver.errors.shown); an answer is never longer than this whatever slipped through.
MAX_MESSAGE_CHARACTERS = 2048

log = get_logger(__name__)


class PluginError(Exception):
    """An error of the HTTP layer itself."""

    caller_fault = False


class MalformedRequest(PluginError):
    caller_fault = True


class NotReady(PluginError):
    """The durable state could not be loaded; nothing can be answered truthfully."""


def describe_validation_error(method: str, exc: ValidationError) -> str:
    """``malformed RequestPool request: Options.a: Input should be a valid string (got 1)``."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(_show_key(p) for p in err["loc"]) or "body"
        value = err.get("input")
        if err["type"] in ("missing", "json_invalid"):
            shown = ""
        elif err["type"] == "string_too_long" and isinstance(value, str):
            shown = f"{len(value)} characters"  # the length says it all; the text is the problem
        else:
            shown = _show(value)
        parts.append(f"{where}: {err['msg']}" + (f" (got {shown})" if shown else ""))
        if len(parts) == _SHOWN_ERRORS:
            break
    more = exc.error_count() - len(parts)
    return (
        f"malformed {method} request: "
        + "; ".join(parts)
        + (f"; and {more} more error{'s' if more > 1 else ''}" if more > 0 else "")
    )


def _show_key(part: object) -> str:
    """A step of the field's path: a map key is the request's own text, so it is cut too."""
    text = str(part)
    return text if len(text) <= _SHOWN_KEY else text[: _SHOWN_KEY - 3] + "..."


def _show(value: object) -> str:
    """A short rendering of a bad value: enough to recognise it, never a wall of hostile text."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def err_response(status: int, message: str) -> web.Response:
    if len(message) > MAX_MESSAGE_CHARACTERS:
        message = f"{message[:MAX_MESSAGE_CHARACTERS]}... ({len(message)} characters)"
    return web.json_response({"Err": message}, status=status, content_type=PLUGIN_CONTENT_TYPE)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (IpamError, DriverError, PluginError) as exc:
        status = 400 if exc.caller_fault else 500
        return err_response(status, str(exc))
    except web.HTTPNotFound:
        return err_response(404, f"unknown method {request.path.lstrip('/')!r}")
    except web.HTTPRequestEntityTooLarge as exc:
        response = err_response(400, f"request body too large: {exc.text}")
        # The rest of the body is still on its way: drop the connection rather than read it.
        response.force_close()
        return response
    except web.HTTPException as exc:
        # Method not allowed and friends: the caller is not speaking the plugin protocol.
        return err_response(400 if exc.status < 500 else 500, exc.reason)
    except Exception as exc:  # a bug of ours: answer, log the traceback, keep serving
        log.exception("internal error", path=request.path)
        return err_response(500, f"internal error in pymacvlan: {type(exc).__name__}: {exc}")
