"""The driver's logger (structlog; the daemon configures the output)."""

from __future__ import annotations

import structlog

log: structlog.typing.FilteringBoundLogger = structlog.get_logger("pymacvlan.driver")
