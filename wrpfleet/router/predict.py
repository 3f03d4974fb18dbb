"""What a request would see on a replica, predicted from the replica's view and the
performance model of its pool: the signal of the SLO- and energy-aware routers.

The view gives running and waiting requests and the tokens in flight, not each
request's lengths, so the prediction spreads the tokens in flight evenly: the
waiting requests' prompts are prefilled before this one's (TTFT), and it then
decodes in a batch one larger than now (TPOT, energy per token).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wrpfleet.pool.perf import Batch, PerfModel, perf_model
from wrpfleet.types import PoolView, ReplicaView, RequestView


@dataclass(frozen=True, slots=True)
class Predictions:
    """Per candidate replica (arrays in the order of ``replicas``)."""

    replicas: list[ReplicaView]
    ttft_s: np.ndarray
    tpot_s: np.ndarray
    j_per_token: np.ndarray  # the replica's energy per output token with this request in
    usd_per_token: np.ndarray  # its cost per output token, likewise
    busy: np.ndarray  # has requests now


class Predictor:
    """Predictions from the pools' performance models (the ``stack``'s fitted constants)."""

    def __init__(self, stack: str = "vllm") -> None:
        self.stack = stack

    def perf(self, pool: PoolView) -> PerfModel:
        return perf_model(pool.gpu, pool.model, pool.tp, pool.dtype, self.stack)

    def predict(
        self, request: RequestView, pool: PoolView, replicas: list[ReplicaView]
    ) -> Predictions:
        """Predictions for ``replicas`` of ``pool``, in one vectorised pass."""
        perf = self.perf(pool)
        running = np.array([r.running for r in replicas], dtype=float)
        waiting = np.array([r.waiting for r in replicas], dtype=float)
        tokens = np.array([r.tokens_in_flight for r in replicas], dtype=float)
        queued = running + waiting
        per_seq = tokens / np.maximum(queued, 1.0)
        ahead = per_seq * waiting  # prompt and answer tokens of the waiting requests
        n = request.input_tokens
        ctx = per_seq * running  # the running requests' context
        prefill = Batch(
            prefill_tokens=ahead + n,
            prefill_seqs=waiting + 1,
            prefill_attn=waiting * per_seq * (per_seq + 1) / 2 + n * (n + 1) / 2,
            decode_seqs=running,
            decode_ctx=ctx,
        )
        ttft = np.asarray(perf.iteration_time(prefill), dtype=float)
        b = running + 1
        tpot, power = perf.step(Batch(decode_seqs=b, decode_ctx=ctx + n))
        tpot = np.asarray(tpot, dtype=float)
        return Predictions(
            replicas,
            ttft,
            tpot,
            np.asarray(power, dtype=float) * tpot / b,
            pool.price_per_replica_hour / 3600 * tpot / b,
            queued > 0,
        )
