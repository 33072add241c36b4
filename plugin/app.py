"""The aiohttp application: settings and services in typed app keys, routes, middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from plugin.admin.routes import ADMIN_ROUTES
from plugin.errors import error_middleware
from plugin.metrics import attach_metrics
from plugin.routes import METHODS
from plugin.services import SERVICES, SETTINGS, ServicesFactory, open_services
from plugin.settings import Settings
from plugin.transport import LIMITS, ConnectionLimits, track_requests

SERVICES_FACTORY: web.AppKey[ServicesFactory] = web.AppKey("services_factory")


def make_app(
    settings: Settings,
    services_factory: ServicesFactory = open_services,
    limits: ConnectionLimits | None = None,
) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes, middlewares=[track_requests, error_middleware]
    )
    app[SETTINGS] = settings
    app[SERVICES_FACTORY] = services_factory
    app[LIMITS] = limits or ConnectionLimits()
    attach_metrics(app)
    app.cleanup_ctx.append(_services)
    app.router.add_routes([m.route() for m in METHODS])
    app.router.add_routes(ADMIN_ROUTES)
    return app


def make_runner(app: web.Application) -> web.AppRunner:
    """The runner for ``app``: no signal handling (the server does its own). The daemon serves
    it through plugin.transport.PluginSite; the connection settings below are for aiohttp's own
    sites (tests): no access log (every call is logged with its ids by plugin.rpc), the idle
    timeout of the limits, and a short linger after a refused oversize body so that a hostile
    client cannot hold a connection open for long."""
    return web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        keepalive_timeout=app.get(LIMITS, ConnectionLimits()).idle_seconds,
        lingering_time=1.0,
    )


async def _services(app: web.Application) -> AsyncIterator[None]:
    async with app[SERVICES_FACTORY](app[SETTINGS]) as services:
        app[SERVICES] = services
        yield
