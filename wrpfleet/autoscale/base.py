"""The autoscaler interface, the registry by name, and what policies share."""

from __future__ import annotations

from typing import Protocol

from wrpfleet.registry import Registry
from wrpfleet.types import PoolMetrics, PoolView, ScaleDecision


class Autoscaler(Protocol):
    def decide(self, pool: PoolView, metrics: PoolMetrics, now: float) -> ScaleDecision: ...


AUTOSCALERS: Registry[Autoscaler] = Registry("autoscaler")
register = AUTOSCALERS.register
build_autoscaler = AUTOSCALERS.build


def clamp(pool: PoolView, target: int) -> int:
    return max(pool.min_replicas, min(pool.max_replicas, target))


def ongoing(pool: PoolView) -> int:
    """Running and waiting requests on the pool's replicas that take traffic."""
    return sum(r.running + r.waiting for r in pool.replicas if r.state != "draining")


class Hysteresis:
    """A change applies once the policy has wanted to move the same way (up, or down)
    for ``up_s`` or ``down_s`` without a break, and then to what it wants now: a blip
    does not start or stop replicas (Ray Serve's upscale and downscale delays)."""

    def __init__(self, up_s: float, down_s: float) -> None:
        self.up_s, self.down_s = up_s, down_s
        self._since: dict[str, tuple[bool, float]] = {}  # pool -> (upward, since when)

    def apply(self, pool: PoolView, wanted: int, now: float, why: str) -> ScaleDecision:
        current = pool.target_replicas
        if wanted == current:
            self._since.pop(pool.name, None)
            return ScaleDecision(current, f"{why}: {current} replicas hold it")
        up = wanted > current
        last = self._since.get(pool.name)
        since = last[1] if last and last[0] == up else now
        self._since[pool.name] = (up, since)
        delay = self.up_s if up else self.down_s
        if now - since >= delay:
            self._since.pop(pool.name, None)
            return ScaleDecision(wanted, f"{why} for {now - since:.0f} s: {current} -> {wanted}")
        return ScaleDecision(current, f"{why}: {wanted} wanted, waiting {delay:g} s")
