"""The admin routes: read-only views for operators (and `gc`), on the plugin's own socket.

They live under their own prefix so that they can never be mistaken for one of Docker's plugin
methods (which are all `POST /Plugin.*`, `/NetworkDriver.*`, `/IpamDriver.*`), and they answer
plain JSON (or Prometheus text), not the plugin protocol's content type.
"""

from __future__ import annotations

from aiohttp import web

from plugin import metrics
from plugin.admin import doctor, gc, health, status

ADMIN_PREFIX = "/pymacvlan/v1"

ADMIN_ROUTES: tuple[web.RouteDef, ...] = (
    web.get(f"{ADMIN_PREFIX}/status", status.handle),
    web.get(f"{ADMIN_PREFIX}/health", health.handle),
    web.get(f"{ADMIN_PREFIX}/metrics", metrics.handle),
    web.post(f"{ADMIN_PREFIX}/doctor", doctor.handle),
    web.post(f"{ADMIN_PREFIX}/gc", gc.handle),
)
