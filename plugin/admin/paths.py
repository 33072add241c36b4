"""The admin routes' paths, in a module of their own: the command line needs them without
importing the routes (aiohttp and the daemon's handlers, which `pymacvlan serve` imports only
after it has bound its socket)."""

from __future__ import annotations

ADMIN_PREFIX = "/pymacvlan/v1"

STATUS_PATH = f"{ADMIN_PREFIX}/status"
HEALTH_PATH = f"{ADMIN_PREFIX}/health"
METRICS_PATH = f"{ADMIN_PREFIX}/metrics"
DOCTOR_PATH = f"{ADMIN_PREFIX}/doctor"
GC_PATH = f"{ADMIN_PREFIX}/gc"
