"""Routers that predict: SLO-aware (the cheapest replica that meets the request's
SLO class) and energy-aware (the fewest active replicas at the lowest joules per
token, while the SLO holds). Both fall back to the fastest replica when none is
predicted to meet the SLO, and balance disaggregated pools by load.

Targets per SLO class, in the scenario's YAML::

    router:
      policy: slo_aware
      params:
        ttft_s: 2.0            # any class not listed
        tpot_s: 0.1
        classes: {interactive: {ttft_s: 0.5, tpot_s: 0.05}, batch: {ttft_s: 60}}
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import PositiveFloat

from wrpfleet.router.base import disaggregated, least_loaded, register
from wrpfleet.router.predict import Predictions, Predictor
from wrpfleet.schema import Spec, validate
from wrpfleet.types import FleetView, RequestView, RouteDecision


class Target(Spec):
    ttft_s: PositiveFloat | None = None
    tpot_s: PositiveFloat | None = None


class _Predictive:
    def __init__(
        self,
        ttft_s: float = 2.0,
        tpot_s: float = 0.1,
        classes: dict[str, dict[str, Any]] | None = None,
        stack: str = "vllm",
    ) -> None:
        self.default = validate(Target, {"ttft_s": ttft_s, "tpot_s": tpot_s})
        self.classes = {k: validate(Target, v) for k, v in (classes or {}).items()}
        self.predictor = Predictor(stack)

    def target(self, slo_class: str) -> tuple[float, float]:
        own = self.classes.get(slo_class, Target())
        ttft = own.ttft_s if own.ttft_s is not None else self.default.ttft_s
        tpot = own.tpot_s if own.tpot_s is not None else self.default.tpot_s
        return ttft, tpot

    def route(self, request: RequestView, fleet: FleetView) -> RouteDecision:
        parts = [
            self.predictor.predict(request, p, ready)
            for p in fleet.pools
            if p.role == "mixed" and (ready := list(p.ready))
        ]
        if parts:
            x = _concat(parts)
            ttft, tpot = self.target(request.slo_class)
            meets = np.flatnonzero((x.ttft_s <= ttft) & (x.tpot_s <= tpot))
            if len(meets):
                keys = self.keys(x)
                best = meets[np.lexsort(tuple(k[meets] for k in reversed(keys)))[0]]
            else:
                best = int(np.argmin(x.ttft_s))
            r = x.replicas[best]
            return RouteDecision(r.pool, r.id)
        prefill, decode = disaggregated(fleet)
        if not (prefill and decode):
            return RouteDecision.reject("no ready replica")
        p, d = least_loaded(prefill), least_loaded(decode)
        return RouteDecision(d.pool, d.id, prefill_pool=p.pool, prefill_replica=p.id)

    def keys(self, x: Predictions) -> tuple[np.ndarray, ...]:
        """Sort keys among the replicas that meet the SLO, most significant first."""
        raise NotImplementedError


def _concat(parts: list[Predictions]) -> Predictions:
    if len(parts) == 1:
        return parts[0]
    return Predictions(
        [r for p in parts for r in p.replicas],
        *(np.concatenate([getattr(p, f) for p in parts]) for f in _ARRAYS),
    )


_ARRAYS = ("ttft_s", "tpot_s", "j_per_token", "usd_per_token", "busy")


@register("slo_aware")
class SloAware(_Predictive):
    """Of the replicas predicted to meet the request's SLO class, the one with the lowest
    cost per output token (its price over the tokens per second it would generate);
    ties to the lower predicted TTFT. None: the lowest predicted TTFT."""

    def keys(self, x: Predictions) -> tuple[np.ndarray, ...]:
        return x.usd_per_token, x.ttft_s


@register("energy_aware")
class EnergyAware(_Predictive):
    """Of the replicas predicted to meet the SLO, a busy one before an idle one (so idle
    replicas stay idle and can be parked), then the lowest joules per output token
    with the request in. None: the lowest predicted TTFT."""

    def keys(self, x: Predictions) -> tuple[np.ndarray, ...]:
        return ~x.busy, x.j_per_token, x.ttft_s
