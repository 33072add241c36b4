"""``GET /pymacvlan/v1/health``: is the daemon able to do its work, and if not, why.

``{"status": "ready" | "loading" | "degraded", "reasons": [...]}``, HTTP 200 when ready and 503
otherwise, so that a probe that reads only the status code (a load balancer's, curl -f) gets it
right too. It never waits for the state: while it loads the answer is "loading".

* **loading**: the state is still being read (the socket answers before that, see
  plugin/services.py).
* **degraded**: the state cannot be used (every call that needs it answers 500 with the same
  line), or in cluster mode etcd could not be reached at the last contact, or refused this
  host (a certificate, a password: `EtcdAccessDenied`) (allocation goes on inside this host's
  blocks; a new block, or an --ip outside them, fails) or another daemon is registered under
  this node name.
* **ready** otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ipam.cluster.mode import ClusterMode
from plugin.services import SERVICES, Services

READY, LOADING, DEGRADED = "ready", "loading", "degraded"
HEALTH_STATES = (READY, LOADING, DEGRADED)


@dataclass(frozen=True)
class Health:
    status: str
    reasons: tuple[str, ...] = ()

    @property
    def http_status(self) -> int:
        return 200 if self.status == READY else 503

    def to_json(self) -> dict[str, object]:
        return {"status": self.status, "reasons": list(self.reasons)}


def judge(*, loaded: bool, load_error: str | None, cluster_problems: list[str]) -> Health:
    """The health from what the daemon knows: a state that cannot be used says more than one
    still loading, which says more than the cluster (whose upkeep starts once the state is
    loaded)."""
    if load_error is not None:
        return Health(DEGRADED, (f"the state cannot be used: {load_error}", *cluster_problems))
    if not loaded:
        return Health(LOADING, ("the state is being loaded",))
    if cluster_problems:
        return Health(DEGRADED, tuple(cluster_problems))
    return Health(READY)


def assess(services: Services | None) -> Health:
    """The health of the daemon whose services these are (None: not started yet)."""
    if services is None:
        return judge(loaded=False, load_error=None, cluster_problems=[])
    cluster = services.ipam.cluster
    return judge(
        loaded=services.loaded,
        load_error=services.load_error,
        cluster_problems=cluster.problems() if isinstance(cluster, ClusterMode) else [],
    )


async def handle(request: web.Request) -> web.Response:
    health = assess(request.app.get(SERVICES))
    return web.json_response(health.to_json(), status=health.http_status)
