"""Replica load balancing: the baselines every other policy is measured against."""

from __future__ import annotations

import random

from wrpfleet.router.base import Balancer, least_loaded, register
from wrpfleet.types import ReplicaView, RequestView


@register("round_robin")
class RoundRobin(Balancer):
    """Each ready replica in turn, whatever its load."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def pick(self, request: RequestView, replicas: list[ReplicaView], role: str) -> ReplicaView:
        i = self._next.get(role, 0)
        self._next[role] = i + 1
        return replicas[i % len(replicas)]


@register("random")
class Random(Balancer):
    """A uniformly random ready replica (seeded: runs repeat)."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)

    def pick(self, request: RequestView, replicas: list[ReplicaView], role: str) -> ReplicaView:
        return replicas[self._rng.randrange(len(replicas))]


@register("least_requests")
class LeastRequests(Balancer):
    """The replica with the fewest outstanding (running + waiting) requests; ties go to
    the least KV usage, then to fleet order."""

    def pick(self, request: RequestView, replicas: list[ReplicaView], role: str) -> ReplicaView:
        return least_loaded(replicas)


@register("least_kv")
class LeastKV(Balancer):
    """The replica with the lowest KV-cache usage (the memory a new request needs);
    ties go to the fewest outstanding requests, then to fleet order."""

    def pick(self, request: RequestView, replicas: list[ReplicaView], role: str) -> ReplicaView:
        return min(replicas, key=lambda r: (r.kv_usage, r.running + r.waiting))


@register("power_of_two")
class PowerOfTwo(Balancer):
    """Two distinct replicas at random, the less loaded of them (Mitzenmacher's power
    of two choices: nearly the tail of least-loaded at the cost of two looks)."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)

    def pick(self, request: RequestView, replicas: list[ReplicaView], role: str) -> ReplicaView:
        if len(replicas) == 1:
            return replicas[0]
        a, b = self._rng.sample(replicas, 2)
        return least_loaded([a, b])
