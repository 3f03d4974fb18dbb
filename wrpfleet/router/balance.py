"""Replica load balancing: the baselines every other policy is measured against."""

from __future__ import annotations

from wrpfleet.router.base import candidates, register
from wrpfleet.types import FleetView, RequestView, RouteDecision


@register("round_robin")
class RoundRobin:
    """Each ready replica in turn, whatever its load."""

    def __init__(self) -> None:
        self._next = 0

    def route(self, request: RequestView, fleet: FleetView) -> RouteDecision:
        ready = candidates(fleet)
        if not ready:
            return RouteDecision.reject("no ready replica")
        r = ready[self._next % len(ready)]
        self._next += 1
        return RouteDecision(r.pool, r.id)


@register("least_requests")
class LeastRequests:
    """The replica with the fewest outstanding (running + waiting) requests; ties go to
    the least KV usage, then to fleet order."""

    def route(self, request: RequestView, fleet: FleetView) -> RouteDecision:
        ready = candidates(fleet)
        if not ready:
            return RouteDecision.reject("no ready replica")
        r = min(ready, key=lambda r: (r.outstanding, r.kv_usage))
        return RouteDecision(r.pool, r.id)
