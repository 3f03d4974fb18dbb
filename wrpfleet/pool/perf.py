"""Performance and power of one engine step, from first principles plus a few
constants fitted once across models (never per model).

Time of a step on a replica of ``tp`` GPUs:

    compute = FLOPs / (tp x peak FLOP/s x compute_eff)
    memory  = bytes / (tp x HBM bandwidth x memory_eff)
    gpu     = (compute^p + memory^p)^(1/p)          a roofline with imperfect overlap
    tp_comm = 2 x layers x (allreduce_latency + 2 (tp-1)/tp x activations / (link x link_eff))
    step    = gpu + tp_comm + step_overhead + seq_overhead x sequences

FLOPs: 2 x active weights per token processed, plus attention over each token's
context; bytes: the weights (once per step; MoE: the experts a batch touches),
the KV cache read by attention, and the KV written.

Power of a step per GPU: idle + (TDP - idle) x min(1, floor + k_compute x compute
utilisation + k_memory x memory utilisation), where utilisation is achieved FLOP/s
(bytes/s) over the peak: an engine holding a CUDA context draws more than bare idle,
and more still the harder it pushes the tensor cores or the memory.

Fields of `Batch` may be numpy arrays, so the fast engine mode prices many steps
of a stable batch in one call.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from wrpfleet.pool.catalog import GPU, ModelArch
from wrpfleet.pool.catalog import gpu as gpu_spec
from wrpfleet.pool.catalog import model as model_spec

Num = float | np.ndarray
CUDA_CONTEXT_W = 46.0
COLD_START_FIXED_S = 30.0  # container, engine start, CUDA graph capture (an estimate)
LOAD_GB_S = 2.0  # weight loading per GPU from local NVMe (an estimate)


@dataclass(slots=True)
class Batch:
    """What one engine step computes."""

    prefill_tokens: Num = 0  # new prompt tokens
    prefill_seqs: Num = 0
    prefill_attn: Num = 0.0  # query-key pairs of the prefill chunks
    prefill_kv_read: Num = 0  # cached tokens the chunks attend to
    decode_seqs: Num = 0
    decode_ctx: Num = 0  # sum of the decoding sequences' context lengths


@dataclass(frozen=True)
class Constants:
    """The fitted constants. ``per_gpu`` overrides some of them for the GPUs the
    calibration data measured (``{"B200": {"memory_eff": 0.7}}``); other GPUs use
    the values of ``reference_gpu``, the best-measured one."""

    compute_eff: float = 0.6
    memory_eff: float = 0.8
    overlap_p: float = 3.0
    step_overhead_s: float = 0.004
    seq_overhead_s: float = 2e-5
    allreduce_latency_s: float = 1e-5
    link_eff: float = 0.7
    power_floor: float = 0.15
    power_compute: float = 0.6
    power_memory: float = 0.4
    per_gpu: dict[str, dict[str, float]] = field(default_factory=dict)
    reference_gpu: str = "H100-SXM"

    @classmethod
    def fitted(cls, stack: str = "vllm") -> Constants:
        """The constants fitted on a software stack's measurements (``vllm``: vLLM 0.11,
        ML.ENERGY; ``splitwise``: the Splitwise paper's engine)."""
        return _fitted(stack)

    def for_gpu(self, gpu: str) -> Constants:
        """The constants with this GPU's overrides applied."""
        own = self.per_gpu.get(gpu, self.per_gpu.get(self.reference_gpu, {}))
        return replace(self, **own) if own else self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@cache
def _fitted(stack: str) -> Constants:
    text = resources.files("wrpfleet.pool").joinpath("fitted.json").read_text()
    stacks = json.loads(text).get("stacks", {})
    if stack not in stacks:
        return Constants()
    return Constants(**stacks[stack]["constants"])


class PerfModel:
    """Step time and power of one replica: ``tp`` GPUs serving ``model`` in ``dtype``."""

    def __init__(
        self,
        gpu: GPU,
        model: ModelArch,
        tp: int = 1,
        dtype: str = "bf16",
        constants: Constants | None = None,
    ) -> None:
        self.gpu, self.model, self.tp, self.dtype = gpu, model, tp, dtype
        self.c = c = (constants or Constants.fitted()).for_gpu(gpu.name)
        self.peak_flops = tp * gpu.matmul_flops(dtype)
        self.peak_bytes = tp * gpu.hbm_bytes_per_s
        self._flops_s = self.peak_flops * c.compute_eff
        self._bytes_s = self.peak_bytes * c.memory_eff
        self.weight_bytes = model.weight_bytes(dtype)
        self.kv_bytes = model.kv_bytes_per_token(dtype)
        self.linear_flops = model.linear_flops_per_token
        self.attn_flops = model.attention_flops(1)  # per query-key pair
        link = gpu.interconnect_gb_s or gpu.pcie_gb_s
        act = 2 * model.hidden_size  # bf16 activations per token
        self._tp_fixed = 0.0
        self._tp_per_token = 0.0
        if tp > 1:
            self._tp_fixed = 2 * model.layers * c.allreduce_latency_s
            ring = 2 * (tp - 1) / tp * act / (link * 1e9 * c.link_eff)
            self._tp_per_token = 2 * model.layers * ring

    def flops(self, b: Batch) -> Num:
        tokens = b.prefill_tokens + b.decode_seqs
        return self.linear_flops * tokens + self.attn_flops * (b.prefill_attn + b.decode_ctx)

    def bytes(self, b: Batch) -> Num:
        tokens = b.prefill_tokens + b.decode_seqs
        weights = self.model.weights_touched(self.dtype, tokens)
        # Scalars first: in a fast phase only the context is an array.
        kv = self.kv_bytes * (b.decode_ctx + (b.prefill_kv_read + b.prefill_tokens + tokens))
        return weights + kv

    def iteration_time(self, b: Batch) -> Num:
        return self._time(b, self.flops(b), self.bytes(b))

    def power_w(self, b: Batch, t: Num) -> Num:
        """Average power of the whole replica (all its GPUs) over a step of ``t`` s."""
        return self._power(self.flops(b), self.bytes(b), t)

    def step(self, b: Batch) -> tuple[Num, Num]:
        """(time, average power) of a step: what the engine needs, FLOPs and bytes once."""
        flops, moved = self.flops(b), self.bytes(b)
        t = self._time(b, flops, moved)
        return t, self._power(flops, moved, t)

    def _time(self, b: Batch, flops: Num, moved: Num) -> Num:
        c = self.c
        p = c.overlap_p
        gpu = ((flops / self._flops_s) ** p + (moved / self._bytes_s) ** p) ** (1 / p)
        tokens = b.prefill_tokens + b.decode_seqs
        seqs = b.prefill_seqs + b.decode_seqs
        fixed = self._tp_fixed + self._tp_per_token * tokens
        return gpu + (fixed + c.step_overhead_s + c.seq_overhead_s * seqs)

    def _power(self, flops: Num, moved: Num, t: Num) -> Num:
        c, g = self.c, self.gpu
        util = (
            c.power_compute / self.peak_flops * flops + c.power_memory / self.peak_bytes * moved
        ) / t
        load = np.minimum(1.0, c.power_floor + util)
        return self.tp * g.idle_w + self.tp * (g.tdp_w - g.idle_w) * load

    @property
    def idle_power_w(self) -> float:
        """A ready replica with nothing to do: its GPUs at idle plus the CUDA context
        an engine holds (26-66 W over bare idle, arXiv 2605.23918; the midpoint)."""
        return self.tp * (self.gpu.idle_w + CUDA_CONTEXT_W)

    @property
    def cold_start_s(self) -> float:
        """Seconds from start to ready, estimated: a fixed start plus the weights over
        the load bandwidth of the replica's GPUs."""
        return COLD_START_FIXED_S + self.weight_bytes / (self.tp * LOAD_GB_S * 1e9)


@cache
def perf_model(
    gpu: str, model: str, tp: int = 1, dtype: str = "bf16", stack: str = "vllm"
) -> PerfModel:
    """The performance model of a pool's replicas by catalog names (policies use it to
    predict; built once per pool kind)."""
    return PerfModel(gpu_spec(gpu), model_spec(model), tp, dtype, Constants.fitted(stack))
