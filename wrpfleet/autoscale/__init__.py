"""Autoscaling policies: pure objects, pool view and metrics in, a replica target out.

The simulator calls ``decide`` every ``interval_s`` simulated seconds; live, Ray
Serve's custom autoscaling-policy hook calls the same object.
"""

from __future__ import annotations

import math
from typing import Protocol

from wrpfleet.errors import InputError
from wrpfleet.registry import Registry
from wrpfleet.types import PoolMetrics, PoolView, ScaleDecision


class Autoscaler(Protocol):
    def decide(self, pool: PoolView, metrics: PoolMetrics, now: float) -> ScaleDecision: ...


AUTOSCALERS: Registry[Autoscaler] = Registry("autoscaler")
register = AUTOSCALERS.register
build_autoscaler = AUTOSCALERS.build


def clamp(pool: PoolView, target: int) -> int:
    return max(pool.min_replicas, min(pool.max_replicas, target))


@register("target_ongoing")
class TargetOngoing:
    """Ray Serve's default policy: enough replicas for ``target`` ongoing (running +
    waiting) requests each; a new target must persist for ``upscale_delay_s`` (up) or
    ``downscale_delay_s`` (down) before it is applied."""

    def __init__(
        self, target: float = 16.0, upscale_delay_s: float = 30.0, downscale_delay_s: float = 600.0
    ) -> None:
        if target <= 0:
            raise InputError(f"target must be > 0, got {target}", field="autoscaler.params")
        self.target, self.up, self.down = target, upscale_delay_s, downscale_delay_s
        self._since: dict[str, tuple[int, float]] = {}  # pool -> (wanted, since when)

    def decide(self, pool: PoolView, metrics: PoolMetrics, now: float) -> ScaleDecision:
        ongoing = sum(r.outstanding for r in pool.replicas if r.state != "draining")
        wanted = clamp(pool, math.ceil(ongoing / self.target))
        current = pool.target_replicas
        if wanted == current:
            self._since.pop(pool.name, None)
            return ScaleDecision(current, f"{ongoing} ongoing: {current} replicas hold it")
        last = self._since.get(pool.name)
        since = last[1] if last and last[0] == wanted else now
        self._since[pool.name] = (wanted, since)
        delay = self.up if wanted > current else self.down
        if now - since >= delay:
            self._since.pop(pool.name, None)
            return ScaleDecision(
                wanted, f"{ongoing} ongoing for {now - since:.0f} s: {current} -> {wanted}"
            )
        return ScaleDecision(current, f"{ongoing} ongoing: {wanted} wanted, waiting {delay:g} s")
