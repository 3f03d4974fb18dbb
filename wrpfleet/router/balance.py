"""Replica load balancing: the baselines every other policy is measured against."""

from __future__ import annotations

from wrpfleet.router.base import candidates, disaggregated, register
from wrpfleet.types import FleetView, ReplicaView, RequestView, RouteDecision


@register("round_robin")
class RoundRobin:
    """Each ready replica in turn, whatever its load."""

    def __init__(self) -> None:
        self._next = 0
        self._next_prefill = 0

    def route(self, request: RequestView, fleet: FleetView) -> RouteDecision:
        ready = candidates(fleet)
        if ready:
            r = ready[self._next % len(ready)]
            self._next += 1
            return RouteDecision(r.pool, r.id)
        prefill, decode = disaggregated(fleet)
        if not (prefill and decode):
            return RouteDecision.reject("no ready replica")
        p = prefill[self._next_prefill % len(prefill)]
        d = decode[self._next % len(decode)]
        self._next_prefill += 1
        self._next += 1
        return RouteDecision(d.pool, d.id, prefill_pool=p.pool, prefill_replica=p.id)


@register("least_requests")
class LeastRequests:
    """The replica with the fewest outstanding (running + waiting) requests; ties go to
    the least KV usage, then to fleet order."""

    def route(self, request: RequestView, fleet: FleetView) -> RouteDecision:
        def least(replicas: list[ReplicaView]) -> ReplicaView:
            loads = [r.running + r.waiting for r in replicas]
            fewest = min(loads)
            ties = [r for r, n in zip(replicas, loads, strict=True) if n == fewest]
            return ties[0] if len(ties) == 1 else min(ties, key=lambda r: r.kv_usage)

        ready = candidates(fleet)
        if ready:
            r = least(ready)
            return RouteDecision(r.pool, r.id)
        prefill, decode = disaggregated(fleet)
        if not (prefill and decode):
            return RouteDecision.reject("no ready replica")
        p, d = least(prefill), least(decode)
        return RouteDecision(d.pool, d.id, prefill_pool=p.pool, prefill_replica=p.id)
