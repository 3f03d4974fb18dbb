"""Routing policies: pure objects, views in, decision out (DESIGN.md).

Nothing here imports simpy, ray or vllm: the simulator and the Ray Serve ingress
build the same `FleetView` from their own state and call the same `route`.
"""

from wrpfleet.router.balance import LeastRequests, RoundRobin
from wrpfleet.router.base import ROUTERS, Router, build_router, candidates

__all__ = ["ROUTERS", "LeastRequests", "RoundRobin", "Router", "build_router", "candidates"]
