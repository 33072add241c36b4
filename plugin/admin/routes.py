"""The admin routes: read-only views for operators (and `gc`), on the plugin's own socket.

They live under their own prefix so that they can never be mistaken for one of Docker's plugin
methods (which are all `POST /Plugin.*`, `/NetworkDriver.*`, `/IpamDriver.*`), and they answer
plain JSON (or Prometheus text), not the plugin protocol's content type.
"""

from __future__ import annotations

from aiohttp import web

from plugin import metrics
from plugin.admin import doctor, gc, health, status
from plugin.admin.paths import (
    ADMIN_PREFIX,
    DOCTOR_PATH,
    GC_PATH,
    HEALTH_PATH,
    METRICS_PATH,
    STATUS_PATH,
)

__all__ = ["ADMIN_PREFIX", "ADMIN_ROUTES"]

ADMIN_ROUTES: tuple[web.RouteDef, ...] = (
    web.get(STATUS_PATH, status.handle),
    web.get(HEALTH_PATH, health.handle),
    web.get(METRICS_PATH, metrics.handle),
    web.post(DOCTOR_PATH, doctor.handle),
    web.post(GC_PATH, gc.handle),
)
