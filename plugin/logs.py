"""Structured logging (structlog) to stderr, where dockerd collects a managed plugin's output."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Final

import structlog

# A log field is cut after this many characters (with its length): the values a request brings
# (IDs, pool strings, option keys, error messages quoting them) must not make a megabyte line,
# however the domains quote them. A traceback gets more room: it is ours, and it is what a bug
# report needs.
MAX_FIELD_CHARACTERS: Final = 1024
MAX_TRACEBACK_CHARACTERS: Final = 16384
_TRACEBACK_KEYS: Final = frozenset({"exception", "exc_info", "stack"})


def cut(text: str, limit: int = MAX_FIELD_CHARACTERS) -> str:
    """``text`` if it is short, else its start and its length."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def cap_fields(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: no field of a log line is longer than the limit, whatever it is."""
    for key, value in event_dict.items():
        if value is None or isinstance(value, bool | int | float):
            continue
        limit = MAX_TRACEBACK_CHARACTERS if key in _TRACEBACK_KEYS else MAX_FIELD_CHARACTERS
        if isinstance(value, str):
            event_dict[key] = cut(value, limit)
            continue
        text = str(value)  # a list, a map, an object: kept as it is unless it is too long
        if len(text) > limit:
            event_dict[key] = cut(text, limit)
    return event_dict


def configure(level: str, fmt: str) -> None:
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        # logfmt-like key=value lines: readable in `journalctl -u docker` and greppable.
        renderer = structlog.processors.LogfmtRenderer(key_order=["timestamp", "level", "event"])
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            cap_fields,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
