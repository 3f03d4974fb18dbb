"""Routing policies: pure objects, views in, decision out (DESIGN.md).

Nothing here imports simpy, ray or vllm: the simulator and the Ray Serve ingress
build the same `FleetView` from their own state and call the same `route`.
"""

from wrpfleet.router import adaptive, affinity, balance, pools, scored, semantic, slo
from wrpfleet.router.base import ROUTERS, Balancer, Router, build_router, candidates

__all__ = [
    "ROUTERS",
    "Balancer",
    "Router",
    "adaptive",
    "affinity",
    "balance",
    "build_router",
    "candidates",
    "pools",
    "scored",
    "semantic",
    "slo",
]
