"""STUB: replaced by the helper that owns this module."""

from __future__ import annotations

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    raise web.HTTPNotImplemented(text="not yet")
