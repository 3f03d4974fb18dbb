"""Pool routing: which pool serves a request, then a load balancer inside it.

``context_length`` sends prompts to pools by length (short prompts kept off the
long-context pool's queues, as FleetOpt's two-pool fleets and token-budget
routing do); ``pd_pair`` chooses both ends of a disaggregated request and sends
short prompts straight to a decode replica, where a KV transfer would cost more
than the prefill it saves.
"""

from __future__ import annotations

from typing import Any

from pydantic import PositiveInt

from wrpfleet.errors import InputError
from wrpfleet.router.base import balancer, disaggregated, register
from wrpfleet.schema import Spec, validate
from wrpfleet.types import FleetView, ReplicaView, RequestView, RouteDecision


class LengthRoute(Spec):
    """Prompts of up to ``max_input_tokens`` tokens (no limit: any length) go to ``pool``."""

    pool: str
    max_input_tokens: PositiveInt | None = None


@register("context_length")
class ContextLength:
    """The first route whose ``max_input_tokens`` holds the prompt picks the pool::

        router:
          policy: context_length
          params:
            routes: [{pool: short, max_input_tokens: 4096}, {pool: long}]
            balance: least_requests

    If that pool has no ready replica, a later route that holds the prompt is tried
    (a long-context pool can serve a short prompt, not the reverse)."""

    def __init__(
        self,
        routes: list[dict[str, Any]],
        balance: str = "least_requests",
        balance_params: dict[str, Any] | None = None,
    ) -> None:
        self.routes = [validate(LengthRoute, r, path=None) for r in routes]
        if not self.routes:
            raise InputError("routes must name at least one pool", field="router.params.routes")
        self.balance = balancer(balance, balance_params)
        self.pools_named = {r.pool for r in self.routes}  # checked against the scenario's

    def pool_for(self, request: RequestView) -> list[str]:
        """The pools that may serve the request, in the order to try them."""
        n = request.input_tokens
        return [
            r.pool for r in self.routes if r.max_input_tokens is None or n <= r.max_input_tokens
        ]

    def route(self, request: RequestView, fleet: FleetView) -> RouteDecision:
        pools = {p.name: p for p in fleet.pools}
        tried = self.pool_for(request)
        for name in tried:
            decision = self.balance.place(request, pools.get(name))
            if decision is not None:
                return decision
        if not tried:
            return RouteDecision.reject(f"no route takes a prompt of {request.input_tokens} tokens")
        return RouteDecision.reject(f"no ready replica in {', '.join(tried)}")


@register("pd_pair")
class PDPair:
    """Disaggregated serving: the prefill replica with the fewest tokens in flight (its
    queue of prompt work) and the decode replica with the most free KV cache (it must
    hold the transferred prompt); prompts of at most ``direct_max_input_tokens`` go
    straight to a decode replica, which prefills them itself without a transfer."""

    def __init__(self, direct_max_input_tokens: int = 0) -> None:
        if direct_max_input_tokens < 0:
            raise InputError(
                f"direct_max_input_tokens must be >= 0, got {direct_max_input_tokens}",
                field="router.params",
            )
        self.direct = direct_max_input_tokens

    def route(self, request: RequestView, fleet: FleetView) -> RouteDecision:
        prefill, decode = disaggregated(fleet)
        if not decode:
            return RouteDecision.reject("no ready decode replica")
        d = self._decode(decode)
        if request.input_tokens <= self.direct or not prefill:
            return RouteDecision(d.pool, d.id)
        p = min(prefill, key=lambda r: (r.tokens_in_flight, r.running + r.waiting))
        return RouteDecision(d.pool, d.id, prefill_pool=p.pool, prefill_replica=p.id)

    @staticmethod
    def _decode(replicas: list[ReplicaView]) -> ReplicaView:
        return min(replicas, key=lambda r: (r.kv_usage, r.running + r.waiting))
