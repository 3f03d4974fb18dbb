"""Routers that choose a model: a contextual bandit that learns from outcomes, and a
quality-aware cascade that predicts.

Both choose among the mixed pools (each serves one model), then balance inside the
chosen pool. In simulation the quality of an answer comes from the capability model
of `wrpfleet.pool.quality`; live, from whatever judges the answers.
"""

from __future__ import annotations

import math
from typing import Any

from wrpfleet.errors import InputError
from wrpfleet.pool.quality import Capabilities, p_good
from wrpfleet.router.base import balancer, register
from wrpfleet.types import FleetView, Outcome, PoolView, RequestView, RouteDecision


def _ready_pools(fleet: FleetView, allowed: list[str] | None) -> list[PoolView]:
    pools = [
        p
        for p in fleet.pools
        if p.role == "mixed" and (allowed is None or p.name in allowed) and p.ready
    ]
    if allowed is not None:  # the order the scenario gives
        pools.sort(key=lambda p: allowed.index(p.name))
    return pools


@register("bandit")
class Bandit:
    """A contextual bandit over pools (GreenServ-style): per context (the request's
    category and difficulty band), UCB1 over the pools on the reward

        quality - energy x (J per output token / its running mean)
                - cost x (USD per output token / its running mean)

    learnt online from `observe`. Energy and cost enter relative to their means over
    every outcome so far, so the weights are scale-free: with ``energy: 0.1`` a pool
    that spends twice the average joules per token pays 0.2 of quality for it. Every
    pool is tried once per context before UCB's optimism (``exploration`` scales it)
    takes over."""

    def __init__(
        self,
        quality: float = 1.0,
        energy: float = 0.05,
        cost: float = 0.05,
        exploration: float = 0.5,
        difficulty_bands: int = 3,
        pools: list[str] | None = None,
        balance: str = "least_requests",
        balance_params: dict[str, Any] | None = None,
    ) -> None:
        if exploration < 0 or difficulty_bands < 1:
            raise InputError(
                "need exploration >= 0 and difficulty_bands >= 1", field="router.params"
            )
        self.weights = (quality, energy, cost)
        self.exploration, self.bands = exploration, difficulty_bands
        self.allowed = pools
        self.pools_named = set(pools or ())
        self.balance = balancer(balance, balance_params)
        self.stats: dict[tuple, dict[str, tuple[int, float]]] = {}  # ctx -> pool -> (n, mean)
        self._pending: dict[int, tuple[tuple, str]] = {}
        self._means = (0, 0.0, 0.0)  # outcomes, mean J per token, mean USD per token

    def context(self, request: RequestView) -> tuple[str, int]:
        band = min(self.bands - 1, int(request.difficulty * self.bands))
        return request.category, band

    def reward(self, outcome: Outcome) -> float:
        wq, we, wc = self.weights
        tokens = max(outcome.output_tokens, 1)
        energy, cost = outcome.energy_j / tokens, outcome.cost_usd / tokens
        n, mean_e, mean_c = self._means
        n += 1
        mean_e += (energy - mean_e) / n
        mean_c += (cost - mean_c) / n
        self._means = (n, mean_e, mean_c)
        quality = outcome.quality if outcome.quality is not None else 0.0
        relative_e = energy / mean_e if mean_e > 0 else 1.0
        relative_c = cost / mean_c if mean_c > 0 else 1.0
        return wq * quality - we * relative_e - wc * relative_c

    def choose(self, ctx: tuple, names: list[str]) -> str:
        arms = self.stats.get(ctx, {})
        for name in names:
            if name not in arms:
                return name
        total = sum(arms[n][0] for n in names)
        return max(
            names,
            key=lambda n: (
                arms[n][1] + self.exploration * math.sqrt(2 * math.log(total) / arms[n][0])
            ),
        )

    def route(self, request: RequestView, fleet: FleetView) -> RouteDecision:
        pools = _ready_pools(fleet, self.allowed)
        if not pools:
            return RouteDecision.reject("no ready replica")
        ctx = self.context(request)
        name = self.choose(ctx, [p.name for p in pools])
        pool = next(p for p in pools if p.name == name)
        self._pending[request.id] = (ctx, name)
        return self.balance.place(request, pool) or RouteDecision.reject("no ready replica")

    def observe(self, outcome: Outcome) -> None:
        ctx, name = self._pending.pop(outcome.request_id, (None, None))
        if ctx is None:
            return
        arms = self.stats.setdefault(ctx, {})
        n, mean = arms.get(name, (0, 0.0))
        arms[name] = (n + 1, mean + (self.reward(outcome) - mean) / (n + 1))


@register("cascade")
class Cascade:
    """Pools from the cheapest (price per replica-hour, or the order of ``pools``); a
    request goes to the first whose model is predicted to answer it well with
    probability at least ``threshold``, else to the last: the small model first,
    escalating when its predicted quality is too low. The prediction is the
    capability model (``capabilities`` overrides it: the router's belief, which may
    differ from the simulated truth)."""

    def __init__(
        self,
        threshold: float = 0.8,
        pools: list[str] | None = None,
        capabilities: Capabilities | None = None,
        balance: str = "least_requests",
        balance_params: dict[str, Any] | None = None,
    ) -> None:
        if not 0 <= threshold <= 1:
            raise InputError(f"threshold is in [0, 1], got {threshold}", field="router.params")
        self.threshold, self.allowed, self.capabilities = threshold, pools, capabilities or {}
        self.pools_named = set(pools or ())
        self.balance = balancer(balance, balance_params)

    def pool_for(self, request: RequestView, pools: list[PoolView]) -> PoolView:
        if self.allowed is None:
            pools = sorted(pools, key=lambda p: p.price_per_replica_hour)
        for p in pools:
            good = p_good(p.model, request.category, request.difficulty, self.capabilities)
            if good >= self.threshold:
                return p
        return pools[-1]

    def route(self, request: RequestView, fleet: FleetView) -> RouteDecision:
        pools = _ready_pools(fleet, self.allowed)
        if not pools:
            return RouteDecision.reject("no ready replica")
        pool = self.pool_for(request, pools)
        return self.balance.place(request, pool) or RouteDecision.reject("no ready replica")
