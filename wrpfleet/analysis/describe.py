"""What a workload looks like before anyone runs it: counts, rates, burstiness,
token lengths, prefix reuse and the class mix, in one pass over the stream."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wrpfleet.types import Request

PERCENTILES = (50, 90, 99)
MAX_TRACKED_BLOCKS = 20_000_000  # distinct prefix ids held to measure reuse (about 1.5 GB)


@dataclass
class WorkloadStats:
    """Per-request columns kept compact (24 bytes a request), plus running counts."""

    arrivals: array = field(default_factory=lambda: array("d"))
    inputs: array = field(default_factory=lambda: array("q"))
    outputs: array = field(default_factory=lambda: array("q"))
    categories: Counter = field(default_factory=Counter)
    slo_classes: Counter = field(default_factory=Counter)
    languages: Counter = field(default_factory=Counter)
    sessions: set = field(default_factory=set)
    dependent: int = 0
    blocks: int = 0
    repeated_blocks: int = 0
    reuse_requests: int = 0
    _seen: set = field(default_factory=set)

    def add(self, r: Request) -> None:
        self.arrivals.append(r.arrival_s)
        self.inputs.append(r.input_tokens)
        self.outputs.append(r.output_tokens)
        self.categories[r.category] += 1
        self.slo_classes[r.slo_class] += 1
        self.languages[r.language] += 1
        if r.session_id is not None:
            self.sessions.add(r.session_id)
        if r.follows is not None:
            self.dependent += 1
        if r.prefix_blocks and len(self._seen) < MAX_TRACKED_BLOCKS:
            seen = self._seen
            for b in r.prefix_blocks:
                if b in seen:
                    self.repeated_blocks += 1
                else:
                    seen.add(b)
            self.blocks += len(r.prefix_blocks)
            self.reuse_requests += 1

    def summary(self) -> dict[str, Any]:
        n = len(self.arrivals)
        t = np.frombuffer(self.arrivals, dtype=float) if n else np.zeros(0)
        span = float(t[-1] - t[0]) if n > 1 else 0.0
        gaps = np.diff(t)
        out: dict[str, Any] = {
            "requests": n,
            "span_s": span,
            "mean_rate_per_s": (n / span) if span > 0 else None,
            "interarrival_cv": float(gaps.std() / gaps.mean())
            if n > 2 and gaps.mean() > 0
            else None,
            "input_tokens": _lengths(self.inputs),
            "output_tokens": _lengths(self.outputs),
            "prefix_reuse": (self.repeated_blocks / self.blocks) if self.blocks else None,
            "prefix_blocks": self.blocks,
            "sessions": len(self.sessions),
            "dependent_requests": self.dependent,
            "categories": dict(self.categories.most_common()),
            "slo_classes": dict(self.slo_classes.most_common()),
            "languages": dict(self.languages.most_common()),
        }
        if self.reuse_requests < n and self.blocks:
            out["prefix_reuse_over_requests"] = self.reuse_requests
        return out


def _lengths(values: array) -> dict[str, float] | None:
    if not values:
        return None
    x = np.frombuffer(values, dtype=np.int64)
    out = {"mean": float(x.mean())}
    out |= {
        f"p{p}": float(v) for p, v in zip(PERCENTILES, np.percentile(x, PERCENTILES), strict=True)
    }
    out["max"] = float(x.max())
    return out


def describe(
    requests: Iterable[Request], on_progress: Callable[[int, float], None] | None = None
) -> WorkloadStats:
    """One pass over a request stream; ``on_progress(count, arrival_s)`` every 10k requests."""
    stats = WorkloadStats()
    for i, r in enumerate(requests, 1):
        stats.add(r)
        if on_progress is not None and i % 10_000 == 0:
            on_progress(i, r.arrival_s)
    return stats
