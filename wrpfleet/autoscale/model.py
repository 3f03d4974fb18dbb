"""Autoscalers that model the pool: a queueing-model policy sized from the forecast
arrival rate and the performance model, an energy-aware policy that parks idle
replicas when that saves more than a restart costs, and a prefill/decode ratio
controller for disaggregated pools."""

from __future__ import annotations

import math

from wrpfleet.autoscale.base import Hysteresis, clamp, ongoing, register
from wrpfleet.errors import InputError
from wrpfleet.pool.fit import steady_batch
from wrpfleet.pool.perf import perf_model
from wrpfleet.types import PoolMetrics, PoolView, ScaleDecision


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message, field="autoscaler.params")


def replica_capacity(
    pool: PoolView,
    input_tokens: float,
    output_tokens: float,
    tpot_s: float,
    max_batch: int = 256,
    stack: str = "vllm",
) -> tuple[float, int]:
    """Requests/s one replica sustains with steps within ``tpot_s``, and the batch that
    does it: the largest batch up to ``max_batch`` and the engine's ``max_num_seqs``
    and what the replicas' KV cache holds whose mean step fits. In the steady state
    ``b`` sequences decode at the mean context while ``b / output_tokens`` prompts a
    step are prefilled alongside, so a replica completes ``b / (output_tokens x
    step)`` requests/s."""
    perf = perf_model(pool.gpu, pool.model, pool.tp, pool.dtype, stack)
    max_batch = min(max_batch, pool.max_num_seqs)
    if pool.replicas:  # KV blocks of 16 tokens (vLLM's default)
        kv = max(r.kv_total_blocks for r in pool.replicas) * 16
        max_batch = max(1, min(max_batch, int(kv // (input_tokens + output_tokens))))

    def step(b: int) -> float:
        # Prompts arrive whole, not as an even trickle: the mean step mixes decode-only
        # steps with steps that prefill one prompt (the roofline is not linear).
        decode = float(perf.iteration_time(steady_batch(b, input_tokens, output_tokens, 0)))
        one = float(perf.iteration_time(steady_batch(b, input_tokens, output_tokens, 1)))
        return decode + b / output_tokens * (one - decode)

    lo, hi = 1, max_batch  # the largest batch whose step fits (1 if even that does not)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if step(mid) <= tpot_s else (lo, mid)
    b = hi if step(hi) <= tpot_s else lo
    return b / (output_tokens * step(b)), b


@register("queue_model")
class QueueModel:
    """Replicas for the arrival rate forecast ``horizon_s`` ahead (Holt's linear
    smoothing of the pool's arrivals, level ``alpha``, trend ``beta``), each replica
    loaded to ``utilization`` of the capacity the performance model gives it at the
    TPOT target, for requests of the given mean lengths. Scales up at once (the
    forecast already looks a cold start ahead), down after ``downscale_delay_s``."""

    def __init__(
        self,
        input_tokens: float = 1000.0,
        output_tokens: float = 250.0,
        tpot_s: float = 0.1,
        utilization: float = 0.8,
        horizon_s: float = 60.0,
        alpha: float = 0.5,
        beta: float = 0.2,
        downscale_delay_s: float = 300.0,
        max_batch: int = 256,
        stack: str = "vllm",
    ) -> None:
        _check(input_tokens > 0 and output_tokens >= 1, "mean lengths must be positive")
        _check(tpot_s > 0 and 0 < utilization <= 1, "need tpot_s > 0 and 0 < utilization <= 1")
        _check(0 < alpha <= 1 and 0 <= beta <= 1, "need 0 < alpha <= 1 and 0 <= beta <= 1")
        self.lengths = (input_tokens, output_tokens)
        self.tpot_s, self.utilization, self.horizon_s = tpot_s, utilization, horizon_s
        self.alpha, self.beta, self.stack, self.max_batch = alpha, beta, stack, max_batch
        self.delays = Hysteresis(0.0, downscale_delay_s)
        self._level: dict[str, tuple[float, float]] = {}  # pool -> (level, trend per s)
        self._capacity: dict[str, float] = {}

    def forecast(self, pool: str, metrics: PoolMetrics) -> float:
        rate = metrics.arrivals_per_s
        if pool not in self._level:
            self._level[pool] = (rate, 0.0)
            return rate
        level, trend = self._level[pool]
        dt = metrics.interval_s
        new = self.alpha * rate + (1 - self.alpha) * (level + trend * dt)
        trend = self.beta * (new - level) / dt + (1 - self.beta) * trend
        self._level[pool] = (new, trend)
        return max(0.0, new + trend * self.horizon_s)

    def decide(self, pool: PoolView, metrics: PoolMetrics, now: float) -> ScaleDecision:
        if pool.name not in self._capacity:
            mu, _ = replica_capacity(pool, *self.lengths, self.tpot_s, self.max_batch, self.stack)
            self._capacity[pool.name] = mu
        mu = self._capacity[pool.name]
        rate = self.forecast(pool.name, metrics)
        wanted = clamp(pool, math.ceil(rate / (mu * self.utilization)))
        why = f"{rate:.2f} req/s forecast, {mu:.2f} req/s a replica at {self.utilization:.0%}"
        return self.delays.apply(pool, wanted, now, why)


@register("energy_aware")
class EnergyAware:
    """Enough replicas for ``target`` ongoing requests each, plus ``headroom`` for bursts
    while a replica starts; spare replicas are parked (down to ``min_replicas``, which
    may be 0) once they have been spare for the break-even time, the idle time whose
    energy equals a restart's: ``cold_start_s`` at the power a starting replica draws,
    which is about its idle power, so break-even is about the cold start itself
    (estimated from the model's weights when not given)."""

    def __init__(
        self,
        target: float = 16.0,
        headroom: float = 1.2,
        cold_start_s: float | None = None,
        stack: str = "vllm",
    ) -> None:
        _check(target > 0 and headroom >= 1, "need target > 0 and headroom >= 1")
        _check(cold_start_s is None or cold_start_s >= 0, "cold_start_s must be >= 0")
        self.target, self.headroom, self.cold_start_s, self.stack = (
            target,
            headroom,
            cold_start_s,
            stack,
        )
        self._delays: dict[str, Hysteresis] = {}

    def decide(self, pool: PoolView, metrics: PoolMetrics, now: float) -> ScaleDecision:
        delays = self._delays.get(pool.name)
        if delays is None:
            start = self.cold_start_s
            if start is None:
                start = perf_model(
                    pool.gpu, pool.model, pool.tp, pool.dtype, self.stack
                ).cold_start_s
            delays = self._delays[pool.name] = Hysteresis(0.0, start)
        n = ongoing(pool)
        wanted = clamp(pool, math.ceil(n * self.headroom / self.target))
        return delays.apply(pool, wanted, now, f"{n} ongoing (break-even {delays.down_s:.0f} s)")


@register("pd_ratio")
class PDRatio:
    """Disaggregated pools, each sized to its own bottleneck so the prefill:decode
    ratio follows the workload: a prefill pool for ``prefill_target`` prompts queued
    or running per replica, a decode pool for its KV cache at ``decode_kv_usage``
    (decode replicas run out of KV before compute); a mixed pool by ongoing requests
    (``prefill_target`` each)."""

    def __init__(
        self,
        prefill_target: float = 4.0,
        decode_kv_usage: float = 0.7,
        upscale_delay_s: float = 30.0,
        downscale_delay_s: float = 300.0,
    ) -> None:
        _check(prefill_target > 0, "prefill_target must be > 0")
        _check(0 < decode_kv_usage <= 1, "need 0 < decode_kv_usage <= 1")
        self.prefill_target, self.decode_kv_usage = prefill_target, decode_kv_usage
        self.delays = Hysteresis(upscale_delay_s, downscale_delay_s)

    def decide(self, pool: PoolView, metrics: PoolMetrics, now: float) -> ScaleDecision:
        live = [r for r in pool.replicas if r.state != "draining"]
        if pool.role == "decode" and live:
            used = sum(r.kv_used_blocks for r in live)
            per_replica = max(r.kv_total_blocks for r in live)
            wanted = math.ceil(used / (self.decode_kv_usage * per_replica))
            why = f"{used} KV blocks in use"
        else:
            n = ongoing(pool)
            wanted = math.ceil(n / self.prefill_target)
            why = f"{n} prompts in flight" if pool.role == "prefill" else f"{n} ongoing"
        return self.delays.apply(pool, clamp(pool, wanted), now, why)
