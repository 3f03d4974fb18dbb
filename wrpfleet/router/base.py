"""The router interface, the registry of policies by name, and shared helpers."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from wrpfleet.registry import Registry
from wrpfleet.types import FleetView, Outcome, ReplicaView, RequestView, RouteDecision


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
