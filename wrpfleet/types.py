"""Shared vocabulary of the WRP stack (DESIGN.md, "Core types").

These are plain, immutable records: workloads produce `Request`s, engines and
policies exchange views and decisions built from them. Nothing here imports
simpy, ray or vllm.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Request:
    """One inference request as a workload issues it.

    ``arrival_s`` is the nominal arrival time. A request that ``follows`` another
    (the next turn of a session, or a closed-loop user's next request) is released
    ``think_s`` after that request completes; its nominal arrival assumes zero
    service time, so the real release is never earlier than ``arrival_s``.

    ``prefix_blocks`` are content hashes of the prompt's blocks of
    ``block_tokens`` tokens, in order: equal ids mean equal prefix content, which
    is what a prefix cache can reuse.

    ``output_blocks`` are the ids the answer's full blocks take in the conversation,
    when a later turn sends them back as part of its prompt: an engine that caches
    generated blocks (vLLM does) serves them from its prefix cache.

    ``session_id`` groups a conversation's turns, or a closed-loop user's requests;
    only requests in a session have followers.
    """

    id: int
    arrival_s: float
    input_tokens: int
    output_tokens: int
    prefix_blocks: tuple[int, ...] = ()
    block_tokens: int = 16
    output_blocks: tuple[int, ...] = ()
    session_id: int | None = None
    turn: int = 0
    follows: int | None = None
    think_s: float = 0.0
    category: str = "unknown"
    difficulty: float = 0.5
    language: str = "en"
    modality: str = "text"
    slo_class: str = "standard"
    text: str = ""  # the prompt, where a trace carries it (keyword and regex routing)


@dataclass(frozen=True, slots=True)
class RequestView:
    """What a router may know of a request when it arrives: not its output length."""

    id: int
    arrival_s: float
    input_tokens: int
    prefix_blocks: tuple[int, ...]
    block_tokens: int
    session_id: int | None
    category: str
    difficulty: float
    language: str
    modality: str
    slo_class: str
    text: str = ""

    @classmethod
    def of(cls, r: Request) -> RequestView:
        return cls(
            r.id,
            r.arrival_s,
            r.input_tokens,
            r.prefix_blocks,
            r.block_tokens,
            r.session_id,
            r.category,
            r.difficulty,
            r.language,
            r.modality,
            r.slo_class,
            r.text,
        )


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """A replica's state as an engine reports it (vLLM's metrics in the live path)."""

    id: str
    pool: str
    state: str  # "starting", "ready", "draining"
    running: int
    waiting: int
    tokens_in_flight: int
    kv_used_blocks: int
    kv_total_blocks: int
    power_w: float = 0.0

    @property
    def outstanding(self) -> int:
        return self.running + self.waiting

    @property
    def kv_usage(self) -> float:
        return self.kv_used_blocks / self.kv_total_blocks if self.kv_total_blocks else 0.0


@dataclass(frozen=True, slots=True)
class PoolView:
    name: str
    role: str  # "mixed", "prefill", "decode"
    model: str
    gpu: str
    replicas: tuple[ReplicaView, ...]
    price_per_replica_hour: float
    min_replicas: int = 0
    max_replicas: int = 0
    target_replicas: int = 0
    tp: int = 1  # GPUs per replica
    dtype: str = "bf16"
    max_num_seqs: int = 256  # the engine's batch limit

    @property
    def ready(self) -> tuple[ReplicaView, ...]:
        return tuple(r for r in self.replicas if r.state == "ready")


@dataclass(frozen=True, slots=True)
class FleetView:
    pools: tuple[PoolView, ...]
    now: float


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Where a request goes: a pool and a replica, or a rejection with its reason. For
    disaggregated pools, ``prefill_replica`` computes the prompt and ``replica`` (of a
    decode pool) receives its KV cache and generates the answer."""

    pool: str | None
    replica: str | None
    reject_reason: str | None = None
    prefill_pool: str | None = None
    prefill_replica: str | None = None

    @classmethod
    def reject(cls, reason: str) -> RouteDecision:
        return cls(None, None, reason)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a request: feedback for adaptive routers, and the metrics' row."""

    request_id: int
    pool: str
    replica: str
    arrival_s: float
    ttft_s: float
    e2e_s: float
    output_tokens: int
    energy_j: float
    cost_usd: float = 0.0
    quality: float | None = None  # 1 good, 0 bad (simulation: the capability model)
    category: str = "unknown"
    model: str = ""


@dataclass(frozen=True, slots=True)
class PoolMetrics:
    """What an autoscaler is told about a pool besides its replicas' states."""

    arrivals_per_s: float  # requests routed to the pool per second, last interval
    interval_s: float


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    """How many replicas a pool should have, and why (reported in the run's log)."""

    target: int
    reason: str
