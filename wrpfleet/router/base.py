"""The router interface, the registry of policies by name, and shared helpers."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from wrpfleet.errors import InputError
from wrpfleet.types import FleetView, Outcome, ReplicaView, RequestView, RouteDecision


@runtime_checkable
class Router(Protocol):
    def route(self, request: RequestView, fleet: FleetView) -> RouteDecision: ...


class Observer(Protocol):
    """Adaptive routers also learn from what became of each request."""

    def observe(self, outcome: Outcome) -> None: ...


ROUTERS: dict[str, type] = {}


def register(name: str):
    def deco(cls: type) -> type:
        ROUTERS[name] = cls
        cls.name = name
        return cls

    return deco


def build_router(policy: str, params: dict[str, Any] | None = None) -> Router:
    """A router from its YAML name and parameters; unknown names and parameters are errors."""
    if policy not in ROUTERS:
        raise InputError(
            f"unknown router {policy!r}; available: {', '.join(sorted(ROUTERS))}", field="router"
        )
    try:
        return ROUTERS[policy](**(params or {}))
    except TypeError as e:
        raise InputError(f"bad parameters for router {policy!r}: {e}", field="router") from None


def candidates(fleet: FleetView) -> list[ReplicaView]:
    """Ready replicas that serve whole requests (pools of role ``mixed``), in fleet order."""
    return [r for p in fleet.pools if p.role == "mixed" for r in p.replicas if r.state == "ready"]


def disaggregated(fleet: FleetView) -> tuple[list[ReplicaView], list[ReplicaView]]:
    """Ready replicas of the prefill pools and of the decode pools."""
    ready = [(p.role, r) for p in fleet.pools for r in p.replicas if r.state == "ready"]
    return [r for role, r in ready if role == "prefill"], [
        r for role, r in ready if role == "decode"
    ]
