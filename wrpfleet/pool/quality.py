"""Answer quality in simulation: a documented capability model, not a measurement.

A model has a capability in [0, 1] for each request category and a request has a
difficulty in [0, 1] (workload classes draw it); the answer is good with
probability ``sigmoid((capability - difficulty) / SPREAD)``. By default capability
grows with the log of the model's effective parameters (for MoE the geometric mean
of active and total), the same in every category::

    capability = clip(0.3 + 0.25 log10(billions of parameters), 0, 0.98)
    # Llama-3.1-8B 0.53, Qwen3-30B-A3B 0.55, Llama-3.1-70B 0.76, Llama-3.1-405B 0.95

This is an assumption chosen to be plausible and simple (larger models answer
harder questions), not fitted to any benchmark; scenarios override it per model
and category where they know better. Whether an answer is good is drawn from a
generator seeded by the run's seed, the request and the model, so every policy
sees the same luck for the same request on the same model (common random numbers).
"""

from __future__ import annotations

import hashlib
import math
from functools import cache

from wrpfleet.pool.catalog import model as model_spec

SPREAD = 0.1

Capabilities = dict[str, dict[str, float]]  # model -> category (or "*") -> capability


@cache  # constant per model, asked for every completed request
def default_capability(model: str) -> float:
    m = model_spec(model)
    active = m.params_active / 1e9
    total = m.params_total / 1e9
    return min(0.98, max(0.0, 0.3 + 0.25 * math.log10(math.sqrt(active * total))))


def capability(model: str, category: str, overrides: Capabilities | None = None) -> float:
    own = (overrides or {}).get(model, {})
    if category in own:
        return own[category]
    if "*" in own:
        return own["*"]
    return default_capability(model)


def p_good(
    model: str, category: str, difficulty: float, overrides: Capabilities | None = None
) -> float:
    """Probability that ``model`` answers a request of this category and difficulty well."""
    x = (capability(model, category, overrides) - difficulty) / SPREAD
    return 1 / (1 + math.exp(-x))


def draw(seed: int, request_id: int, model: str, p: float) -> float:
    """1.0 for a good answer, 0.0 for a bad one: a uniform seeded by (seed, request,
    model) against ``p``."""
    digest = hashlib.blake2b(f"{seed}/{request_id}/{model}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    return 1.0 if u < p else 0.0
