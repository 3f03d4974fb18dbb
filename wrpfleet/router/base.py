"""The router interface, the registry of policies by name, and shared helpers."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from wrpfleet.errors import InputError
from wrpfleet.registry import Registry
from wrpfleet.types import FleetView, Outcome, PoolView, ReplicaView, RequestView, RouteDecision


@runtime_checkable
class Router(Protocol):
    def route(self, request: RequestView, fleet: FleetView) -> RouteDecision: ...


class Observer(Protocol):
    """Adaptive routers also learn from what became of each request."""

    def observe(self, outcome: Outcome) -> None: ...


ROUTERS: Registry[Router] = Registry("router")
register = ROUTERS.register
build_router = ROUTERS.build


def candidates(fleet: FleetView) -> list[ReplicaView]:
    """Ready replicas that serve whole requests (pools of role ``mixed``), in fleet order."""
    return [r for p in fleet.pools if p.role == "mixed" for r in p.replicas if r.state == "ready"]


def disaggregated(fleet: FleetView) -> tuple[list[ReplicaView], list[ReplicaView]]:
    """Ready replicas of the prefill pools and of the decode pools."""
    ready = [(p.role, r) for p in fleet.pools for r in p.replicas if r.state == "ready"]
    return [r for role, r in ready if role == "prefill"], [
        r for role, r in ready if role == "decode"
    ]


def least_loaded(replicas: list[ReplicaView]) -> ReplicaView:
    """The replica with the fewest outstanding requests; ties go to the least KV usage,
    then to the first. Two passes without a key function: routers call this per request."""
    loads = [r.running + r.waiting for r in replicas]
    fewest = min(loads)
    ties = [r for r, n in zip(replicas, loads, strict=True) if n == fewest]
    return ties[0] if len(ties) == 1 else min(ties, key=lambda r: r.kv_usage)


class Balancer:
    """A router that picks one replica among candidates. Whole requests go to a ready
    replica of the mixed pools; with only prefill and decode pools, ``pick`` chooses
    each end (``role`` says which)."""

    def route(self, request: RequestView, fleet: FleetView) -> RouteDecision:
        ready = candidates(fleet)
        if ready:
            r = self.pick(request, ready, "mixed")
            return RouteDecision(r.pool, r.id)
        prefill, decode = disaggregated(fleet)
        if not (prefill and decode):
            return RouteDecision.reject("no ready replica")
        p = self.pick(request, prefill, "prefill")
        d = self.pick(request, decode, "decode")
        return RouteDecision(d.pool, d.id, prefill_pool=p.pool, prefill_replica=p.id)

    def pick(self, request: RequestView, replicas: list[ReplicaView], role: str) -> ReplicaView:
        raise NotImplementedError

    def place(self, request: RequestView, pool: PoolView | None) -> RouteDecision | None:
        """A whole request to a ready replica of ``pool`` (pool routers choose the pool
        and leave the replica to a balancer); None if the pool has none ready."""
        ready = list(pool.ready) if pool is not None else []
        if not ready:
            return None
        r = self.pick(request, ready, "mixed")
        return RouteDecision(r.pool, r.id)


def balancer(name: str, params: dict[str, Any] | None) -> Balancer:
    """A load balancer by router name, for use inside a pool."""
    b = build_router(name, params)
    if not isinstance(b, Balancer):
        raise InputError(
            f"{name!r} is not a replica load balancer (round_robin, random, least_requests, "
            "least_kv, power_of_two, prefix_affinity, session_affinity, scored)",
            field="router.params.balance",
        )
    return b
