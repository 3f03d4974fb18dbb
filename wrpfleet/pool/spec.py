"""Pool and fleet specs: which GPUs run which model, how many, with which engine settings.

Engine settings carry vLLM's names (``max_num_seqs``, ``max_num_batched_tokens``,
``gpu_memory_utilization``, ``block_size``) so a pool spec reads like the
``vllm serve`` flags it stands for.
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from wrpfleet.errors import InputError
from wrpfleet.pool import catalog
from wrpfleet.schema import Spec
from wrpfleet.types import PoolView, ReplicaView


class EngineSpec(Spec):
    """Per-replica engine settings, as vLLM names them."""

    max_num_seqs: PositiveInt = 256
    max_num_batched_tokens: PositiveInt = 8192
    max_model_len: PositiveInt | None = None
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    block_size: PositiveInt = 16
    enable_prefix_caching: bool = True
    enable_chunked_prefill: bool = True
    scheduling: Literal["fcfs", "priority"] = "fcfs"
    calibration: Literal["vllm", "splitwise"] = Field(
        "vllm",
        description="which fitted constants price the engine's steps: vLLM 0.11 (ML.ENERGY) "
        "or the Splitwise paper's engine",
    )

    @model_validator(mode="after")
    def _budget(self) -> EngineSpec:
        # vLLM refuses this too: every running sequence must fit one step's token budget.
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be at least "
                f"max_num_seqs ({self.max_num_seqs})"
            )
        return self


class PoolSpec(Spec):
    """Identical replicas of one model on one GPU type (``tp`` GPUs per replica)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    role: Literal["mixed", "prefill", "decode"] = "mixed"
    model: str
    gpu: str
    tp: PositiveInt = 1
    dtype: Literal["bf16", "fp8"] = "bf16"
    replicas: NonNegativeInt = 1
    min_replicas: NonNegativeInt | None = None
    max_replicas: PositiveInt | None = None
    engine: EngineSpec = EngineSpec()
    price_per_gpu_hour: PositiveFloat | None = Field(
        None, description="USD; None takes the GPU catalog's price"
    )
    cold_start_s: NonNegativeFloat | None = Field(
        None, description="seconds from scale-up to ready; None derives it from the model size"
    )

    @field_validator("gpu", "model")
    @classmethod
    def _in_catalog(cls, v: str, info: ValidationInfo) -> str:
        """Known to the catalogs; written the catalog's way ("H100" -> "H100-SXM")."""
        lookup = catalog.gpu if info.field_name == "gpu" else catalog.model
        try:
            return lookup(v).name
        except InputError as e:
            raise ValueError(e.message) from None

    @model_validator(mode="after")
    def _bounds(self) -> PoolSpec:
        lo, hi = self.bounds
        if not lo <= self.replicas <= hi:
            raise ValueError(
                "need min_replicas <= replicas <= max_replicas, "
                f"got {lo} <= {self.replicas} <= {hi}"
            )
        return self

    @property
    def bounds(self) -> tuple[int, int]:
        """(min, max) replicas an autoscaler may set; unset ones are ``replicas``."""
        lo = self.min_replicas if self.min_replicas is not None else self.replicas
        hi = self.max_replicas if self.max_replicas is not None else self.replicas
        return lo, hi

    @property
    def price_per_replica_hour(self) -> float:
        """USD: the pool's price per GPU-hour (the catalog's if not given) times ``tp``."""
        return (self.price_per_gpu_hour or catalog.gpu(self.gpu).price_per_gpu_hour) * self.tp

    def view(
        self, replicas: tuple[ReplicaView, ...], target: int, price_per_replica_hour: float
    ) -> PoolView:
        """The pool as policies see it (the simulator and the live app build it alike)."""
        lo, hi = self.bounds
        return PoolView(
            name=self.name,
            role=self.role,
            model=self.model,
            gpu=self.gpu,
            replicas=replicas,
            price_per_replica_hour=price_per_replica_hour,
            min_replicas=lo,
            max_replicas=hi,
            target_replicas=target,
            tp=self.tp,
            dtype=self.dtype,
            max_num_seqs=self.engine.max_num_seqs,
        )

    @property
    def gpus(self) -> int:
        return self.replicas * self.tp


class LinkSpec(Spec):
    """The KV-cache transfer link between prefill and decode replicas."""

    bandwidth_gb_s: PositiveFloat = Field(description="GB/s, one direction")
    latency_s: NonNegativeFloat = 0.0


class FleetSpec(Spec):
    """All pools of a deployment, and the link that joins prefill to decode pools."""

    pools: list[PoolSpec] = Field(min_length=1)
    kv_link: LinkSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FleetSpec:
        names = [p.name for p in self.pools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pool names must be unique: {', '.join(dupes)} repeated")
        roles = {p.role for p in self.pools}
        if ("prefill" in roles) != ("decode" in roles):
            raise ValueError("a prefill pool needs a decode pool and the other way round")
        if "prefill" in roles and self.kv_link is None:
            raise ValueError("disaggregated pools need a kv_link (bandwidth_gb_s, latency_s)")
        return self
