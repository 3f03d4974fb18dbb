"""Autoscalers driven by ongoing requests: Ray Serve's default and Knative's KPA."""

from __future__ import annotations

import math
from collections import deque

from wrpfleet.autoscale.base import Hysteresis, clamp, ongoing, register
from wrpfleet.errors import InputError
from wrpfleet.types import PoolMetrics, PoolView, ScaleDecision


def _positive(**values: float) -> None:
    bad = {k: v for k, v in values.items() if not v > 0}
    if bad:
        raise InputError(
            "; ".join(f"{k} must be > 0, got {v}" for k, v in bad.items()),
            field="autoscaler.params",
        )


@register("target_ongoing")
class TargetOngoing:
    """Ray Serve's default policy: enough replicas for ``target`` ongoing (running +
    waiting) requests each; a new target must persist for ``upscale_delay_s`` (up) or
    ``downscale_delay_s`` (down) before it is applied."""

    def __init__(
        self, target: float = 16.0, upscale_delay_s: float = 30.0, downscale_delay_s: float = 600.0
    ) -> None:
        _positive(target=target)
        self.target = target
        self.delays = Hysteresis(upscale_delay_s, downscale_delay_s)

    def decide(self, pool: PoolView, metrics: PoolMetrics, now: float) -> ScaleDecision:
        n = ongoing(pool)
        wanted = clamp(pool, math.ceil(n / self.target))
        return self.delays.apply(pool, wanted, now, f"{n} ongoing")


@register("kpa")
class KPA:
    """Knative's pod autoscaler: replicas for the mean ongoing requests over a
    ``stable_window_s`` at ``target`` each; when the mean over the short
    ``panic_window_s`` asks for ``panic_threshold`` times the current replicas, it
    panics: scales up at once to the panic-window figure and does not scale down
    until a stable window has passed without panic."""

    def __init__(
        self,
        target: float = 16.0,
        stable_window_s: float = 60.0,
        panic_window_s: float = 6.0,
        panic_threshold: float = 2.0,
    ) -> None:
        _positive(target=target, stable_window_s=stable_window_s, panic_window_s=panic_window_s)
        if panic_threshold <= 1:
            raise InputError(
                f"panic_threshold must be > 1, got {panic_threshold}", field="autoscaler.params"
            )
        self.target, self.stable, self.panic = target, stable_window_s, panic_window_s
        self.threshold = panic_threshold
        self._samples: dict[str, deque[tuple[float, int]]] = {}
        self._panic_since: dict[str, float] = {}

    def _mean(self, samples: deque[tuple[float, int]], now: float, window: float) -> float:
        recent = [n for t, n in samples if t > now - window] or [samples[-1][1]]
        return sum(recent) / len(recent)

    def decide(self, pool: PoolView, metrics: PoolMetrics, now: float) -> ScaleDecision:
        samples = self._samples.setdefault(pool.name, deque())
        samples.append((now, ongoing(pool)))
        while samples and samples[0][0] <= now - self.stable:
            samples.popleft()
        current = max(pool.target_replicas, 1)
        stable = math.ceil(self._mean(samples, now, self.stable) / self.target)
        burst = math.ceil(self._mean(samples, now, self.panic) / self.target)
        if burst >= self.threshold * current:
            self._panic_since[pool.name] = now
        since = self._panic_since.get(pool.name)
        if since is not None and now - since < self.stable:
            wanted = clamp(pool, max(pool.target_replicas, burst))
            return ScaleDecision(wanted, f"panic: {burst} wanted over {self.panic:g} s")
        self._panic_since.pop(pool.name, None)
        wanted = clamp(pool, stable)
        return ScaleDecision(wanted, f"stable: {stable} wanted over {self.stable:g} s")
