"""The composable router: filters, then weighted scorers, then a picker.

As llm-d's endpoint picker and AIBrix do, each scorer maps a candidate replica to
[0, 1] (higher is better) and the weighted sum decides, so a scenario combines
signals in YAML::

    router:
      policy: scored
      params:
        scorers: {prefix: 2, queue: 1, kv: 1}
        max_kv_usage: 0.95      # filter: skip replicas whose KV cache is this full
        picker: max             # or random: uniform among the best

Scorers: ``queue`` (fewest outstanding requests, scaled between the least and the
most loaded candidate), ``tokens`` (fewest tokens in flight, scaled the same way),
``kv`` (1 - KV usage), ``prefix`` (share of the prompt's blocks the replica
probably caches, from the router's `PrefixIndex`), ``session`` (1 for the
session's home replica on a bounded-load hash ring).
"""

from __future__ import annotations

import random

from wrpfleet.errors import InputError
from wrpfleet.router.affinity import HashRing, PrefixIndex
from wrpfleet.router.base import Balancer, register
from wrpfleet.types import ReplicaView, RequestView

SCORERS = ("queue", "tokens", "kv", "prefix", "session")


def _spread(values: list[float]) -> list[float]:
    """1 for the lowest value, 0 for the highest, linear between; 1 when all equal."""
    lo, hi = min(values), max(values)
    if hi == lo:
        return [1.0] * len(values)
    return [(hi - v) / (hi - lo) for v in values]


@register("scored")
class Scored(Balancer):
    def __init__(
        self,
        scorers: dict[str, float] | None = None,
        max_kv_usage: float | None = None,
        max_outstanding: int | None = None,
        picker: str = "max",
        seed: int = 0,
        engine_block_tokens: int = 16,
        vnodes: int = 100,
        load_factor: float = 1.25,
    ) -> None:
        weights = {"queue": 1.0, "kv": 1.0} if scorers is None else dict(scorers)
        unknown = sorted(set(weights) - set(SCORERS))
        if unknown or not weights:
            raise InputError(
                f"unknown scorers {', '.join(unknown) or '(none given)'}; "
                f"available: {', '.join(SCORERS)}",
                field="router.params.scorers",
            )
        if any(not isinstance(w, int | float) or w < 0 for w in weights.values()):
            raise InputError(
                f"scorer weights must be numbers >= 0, got {weights}", field="router.params"
            )
        if picker not in ("max", "random"):
            raise InputError(
                f"picker must be max or random, got {picker!r}", field="router.params.picker"
            )
        self.weights = {k: float(w) for k, w in weights.items() if w > 0}
        self.max_kv_usage, self.max_outstanding = max_kv_usage, max_outstanding
        self.picker = picker
        self._rng = random.Random(seed)
        self.index = PrefixIndex(engine_block_tokens) if "prefix" in self.weights else None
        self.ring = HashRing(vnodes, load_factor) if "session" in self.weights else None

    def filter(self, replicas: list[ReplicaView]) -> list[ReplicaView]:
        """Candidates the filters keep; all of them if the filters keep none."""
        kept = replicas
        if self.max_kv_usage is not None:
            kept = [r for r in kept if r.kv_usage <= self.max_kv_usage]
        if self.max_outstanding is not None:
            kept = [r for r in kept if r.running + r.waiting < self.max_outstanding]
        return kept or replicas

    def scores(self, request: RequestView, replicas: list[ReplicaView]) -> list[float]:
        total = [0.0] * len(replicas)
        for name, w in self.weights.items():
            for i, s in enumerate(self._score(name, request, replicas)):
                total[i] += w * s
        return total

    def _score(self, name: str, request: RequestView, replicas: list[ReplicaView]) -> list[float]:
        if name == "queue":
            return _spread([r.running + r.waiting for r in replicas])
        if name == "tokens":
            return _spread([r.tokens_in_flight for r in replicas])
        if name == "kv":
            return [1.0 - r.kv_usage for r in replicas]
        if name == "prefix":
            ids = request.prefix_blocks
            depth = self.index.match(ids, replicas) if ids else {}
            return [depth.get(r.id, 0) / len(ids) if ids else 0.0 for r in replicas]
        # session
        if request.session_id is None:
            return [0.0] * len(replicas)
        home = self.ring.home(f"session-{request.session_id}", replicas).id
        return [1.0 if r.id == home else 0.0 for r in replicas]

    def pick(self, request: RequestView, replicas: list[ReplicaView], role: str) -> ReplicaView:
        kept = self.filter(replicas)
        scores = self.scores(request, kept)
        best = max(scores)
        top = [r for r, s in zip(kept, scores, strict=True) if s >= best - 1e-12]
        chosen = top[0] if self.picker == "max" else top[self._rng.randrange(len(top))]
        if self.index is not None and role != "decode":
            self.index.record(chosen, request.prefix_blocks, request.block_tokens)
        return chosen
