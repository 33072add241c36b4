"""Prometheus metrics: one registry per app, every protocol call counted as it is answered, the
state read when it is scraped; served on ``GET /pymacvlan/v1/metrics`` (and on the optional TCP
listener, plugin/metrics_listener.py).

Rules:

* **Never the library's global registry.** Each app has its own `CollectorRegistry`: a daemon's
  numbers are its own, and the tests run many apps in one process.
* **Read, not mirrored.** What the services hold (pools, endpoints, links, leases, cluster
  blocks) is read by a collector when Prometheus scrapes (plugin/metrics_state.py), not copied
  into gauges that every change would have to keep up to date. Only the calls themselves are
  counted as they happen (`Metrics.observe_call`, from plugin/rpc.py).
* **Bounded labels.** Method names come from the route table (a request for any other path is
  a 404 that never reaches a method), outcomes from `OUTCOMES`, pools from the pools that exist.
* **Never waits** for the state: a scrape while the state loads answers what is known.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder

from plugin.metrics_state import StateCollector
from plugin.services import SERVICES, Services

# How a protocol call ended: answered; refused as the caller's fault (HTTP 400); failed (HTTP 500,
# and calls that Docker gave up on: it disconnects when an answer takes too long).
OK, REFUSED, FAILED = "ok", "refused", "failed"
OUTCOMES = (OK, REFUSED, FAILED)

# Seconds. Most calls take a millisecond or two; a probe of the LAN waits up to its probe_wait,
# a cluster claim up to five etcd timeouts; Docker gives up after 30 s.
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The registry of one app: the calls counted here, the state read by `StateCollector`."""

    def __init__(self, services: Callable[[], Services | None]) -> None:
        self.registry = CollectorRegistry()
        self._calls = Counter(
            "pymacvlan_requests",
            "Protocol calls answered (Docker's NetworkDriver, IpamDriver and Plugin methods), "
            "by method and outcome: ok, refused (the caller's fault, HTTP 400), failed (HTTP 500, "
            "or given up by Docker).",
            ["method", "outcome"],
            registry=self.registry,
        )
        self._seconds = Histogram(
            "pymacvlan_request_duration_seconds",
            "Time from a protocol call's arrival to its answer, by method.",
            ["method"],
            buckets=CALL_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(StateCollector(services))

    def observe_call(self, method: str, outcome: str, seconds: float) -> None:
        self._calls.labels(method, outcome).inc()
        self._seconds.labels(method).observe(seconds)

    def render(self, accept: str) -> tuple[bytes, str]:
        """The exposition in the format the scraper accepts (text by default, OpenMetrics when
        asked for), and its content type."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


METRICS = web.AppKey("metrics", Metrics)


def outcome_of(exc: BaseException) -> str:
    """The outcome of a call that raised `exc`, by the error middleware's rule (plugin/errors.py):
    the caller's fault is a 400, anything else a 500. (A cancelled call raises no `Exception`:
    plugin/rpc.py counts it as failed, Docker having stopped waiting for it.)"""
    if isinstance(exc, web.HTTPException):  # aiohttp's own, such as a body over the limit
        return REFUSED if exc.status < 500 else FAILED
    return REFUSED if getattr(exc, "caller_fault", False) else FAILED


def attach_metrics(app: web.Application) -> Metrics:
    """Give `app` its own metrics, reading the services the app holds when scraped."""
    metrics = Metrics(lambda: app.get(SERVICES))
    app[METRICS] = metrics
    return metrics


async def handle(request: web.Request) -> web.Response:
    body, content_type = request.app[METRICS].render(request.headers.get("Accept", ""))
    return web.Response(body=body, headers={"Content-Type": content_type})
