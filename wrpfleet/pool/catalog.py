"""GPU and model catalogs: the facts that performance, power and cost models start from.

Why a catalog: every number a simulation rests on (a GPU's peak FLOP/s and memory
bandwidth, a model's shape) should be written down once, next to its source, and
everything else derived from it. ``gpus.yaml`` and ``models.yaml`` (package data
beside this module) hold only what can be read off a datasheet, a measurement, a
price list or a model's Hugging Face ``config.json``. Parameter counts, weight bytes,
KV-cache bytes and FLOPs are computed here, never typed in, so a wrong shape shows
up as a wrong parameter count that the tests compare with the published one.

Names are forgiving because users and tools spell them differently: lookups are
case-insensitive, accept aliases (``H100``, ``a100-80gb``), Hugging Face ids with or
without the organisation, and the -Instruct / -it / -Base / -pt / -hf variants of a
model (same architecture, other weights). An unknown name is an `InputError` that
lists the known names and the closest one.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Generic, Literal, TypeVar

import numpy as np
from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from wrpfleet.errors import InputError
from wrpfleet.schema import Spec, load_yaml_spec

GPUS_YAML = Path(__file__).with_name("gpus.yaml")
MODELS_YAML = Path(__file__).with_name("models.yaml")

Dtype = Literal["bf16", "fp8"]
BYTES_PER_ELEMENT: dict[str, int] = {"bf16": 2, "fp8": 1}
"""Bytes per weight or KV element. FP8 counts every weight at 1 byte, although FP8
checkpoints usually keep embeddings, lm_head and norms in BF16 (a few % more)."""


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of ``dtype``; an unknown dtype is an `InputError`."""
    try:
        return BYTES_PER_ELEMENT[dtype]
    except KeyError:
        known = ", ".join(BYTES_PER_ELEMENT)
        raise InputError(f"unknown dtype {dtype!r}; known: {known}") from None


# --- GPUs ------------------------------------------------------------------------------


class GPU(Spec):
    """One accelerator: peak rates, memory, power, links and price, each with a source.

    Peak FLOP/s are dense (no 2:4 sparsity) tensor-core rates; bandwidths are one
    direction. These are datasheet peaks: the performance model applies the
    efficiencies it fits to measurements (aiconfigurator assumes ~80 % of HBM
    bandwidth is reachable), so none is baked in here.
    """

    name: str
    aliases: list[str] = []
    vendor: Literal["NVIDIA", "AMD"]
    form_factor: Literal["SXM", "PCIe", "OAM"]
    bf16_tflops: PositiveFloat
    fp8_tflops: PositiveFloat | None = Field(description="None: no FP8 tensor cores")
    hbm_bandwidth_gb_s: PositiveFloat = Field(description="device memory, GB/s")
    memory_gib: PositiveFloat
    tdp_w: PositiveFloat
    idle_w: NonNegativeFloat
    interconnect: str | None = Field(description="scale-up link; None: PCIe only")
    interconnect_gb_s: PositiveFloat | None = Field(description="per GPU, one direction")
    pcie_gb_s: PositiveFloat = Field(description="host link, one direction")
    price_per_gpu_hour: PositiveFloat = Field(description="USD, on demand")
    price_date: str = Field(description="when the price was seen (prices move)")
    sources: dict[str, str] = Field(description="field -> where its number comes from")
    estimated: list[str] = Field([], description="fields that are our estimates")
    notes: str = ""

    NUMBERS: ClassVar[tuple[str, ...]] = (
        "bf16_tflops",
        "fp8_tflops",
        "hbm_bandwidth_gb_s",
        "memory_gib",
        "tdp_w",
        "idle_w",
        "interconnect_gb_s",
        "pcie_gb_s",
        "price_per_gpu_hour",
    )
    """The fields that hold a number, each of which needs a source."""

    @model_validator(mode="after")
    def _sourced(self) -> GPU:
        numbers = set(self.NUMBERS)
        unknown = sorted((set(self.sources) | set(self.estimated)) - numbers)
        if unknown:
            raise ValueError(
                f"sources/estimated name unknown fields {unknown}; fields: {sorted(numbers)}"
            )
        unsourced = sorted(
            f for f in numbers if getattr(self, f) is not None and not self.sources.get(f)
        )
        if unsourced:
            raise ValueError(f"every number needs a source; missing for {unsourced}")
        if (self.interconnect is None) != (self.interconnect_gb_s is None):
            raise ValueError("give interconnect and interconnect_gb_s together, or neither")
        return self

    @property
    def memory_bytes(self) -> int:
        return round(self.memory_gib * 2**30)

    @property
    def hbm_bytes_per_s(self) -> float:
        return self.hbm_bandwidth_gb_s * 1e9

    def matmul_flops(self, dtype: Dtype) -> float:
        """Peak dense matmul FLOP/s for weights in ``dtype``.

        A GPU without FP8 tensor cores (A100) still serves FP8 checkpoints: vLLM
        upcasts the weights in the kernel (Marlin W8A16), so the math runs at the
        BF16 rate; only the bytes moved shrink.
        """
        dtype_bytes(dtype)
        tflops = self.fp8_tflops if dtype == "fp8" and self.fp8_tflops else self.bf16_tflops
        return tflops * 1e12


# --- Models ----------------------------------------------------------------------------


class MoE(Spec):
    """Mixture-of-experts MLPs (config.json names).

    Each routed and shared expert is a gated MLP of width ``moe_intermediate_size``;
    the first ``first_k_dense_replace`` layers keep a dense MLP of the model's
    ``intermediate_size`` instead (DeepSeek-V3: 3).
    """

    num_experts: PositiveInt
    num_experts_per_tok: PositiveInt
    moe_intermediate_size: PositiveInt
    n_shared_experts: NonNegativeInt = 0
    first_k_dense_replace: NonNegativeInt = 0


class MLA(Spec):
    """Multi-head latent attention (DeepSeek-V2/V3; config.json names).

    Queries go through a low-rank bottleneck (``q_lora_rank``; None: a plain
    projection); keys and values are rebuilt per head from one shared latent of
    ``kv_lora_rank``, plus a RoPE key of ``qk_rope_head_dim`` shared by all heads.
    Only the latent and the RoPE key are cached.
    """

    q_lora_rank: PositiveInt | None
    kv_lora_rank: PositiveInt
    qk_nope_head_dim: PositiveInt
    qk_rope_head_dim: PositiveInt
    v_head_dim: PositiveInt

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim


class SlidingWindow(Spec):
    """Local attention on most layers (gemma-3: window 1024, pattern 6).

    Layer ``i`` is global (full attention) when ``(i + 1) % pattern == 0``, as in
    transformers' Gemma3; the others attend to the last ``window`` tokens only and
    so never hold more than ``window`` tokens of KV cache.
    """

    window: PositiveInt
    pattern: PositiveInt = Field(description="every pattern-th layer is global")


class ModelArch(Spec):
    """A decoder-only transformer's shape, from its config.json, and what follows from it.

    Counting conventions (``params_*``): embeddings, attention projections (GQA or
    MLA), MLPs (gated: 3 matrices; plain: 2), MoE experts and routers, and an untied
    lm_head. Norm weights and biases are left out: they are ~``2 * hidden_size`` per
    layer (BLOOM's biases ~``13 * hidden_size``), under 0.01 % of any model here.
    """

    name: str
    hf_id: str
    aliases: list[str] = []
    source: str = Field(min_length=1)
    notes: str = ""
    layers: PositiveInt
    hidden_size: PositiveInt
    num_attention_heads: PositiveInt
    num_key_value_heads: PositiveInt
    head_dim: PositiveInt | None = Field(description="None only with mla")
    intermediate_size: PositiveInt
    vocab_size: PositiveInt
    tie_word_embeddings: bool
    max_position_embeddings: PositiveInt
    mlp: Literal["gated", "plain"] = "gated"
    position_encoding: Literal["rope", "alibi"] = "rope"
    moe: MoE | None = None
    mla: MLA | None = None
    sliding_window: SlidingWindow | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelArch:
        if self.mla is None and self.head_dim is None:
            raise ValueError("head_dim is required (it may only be left out with mla)")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        if self.moe is not None:
            if self.moe.num_experts_per_tok > self.moe.num_experts:
                raise ValueError("moe.num_experts_per_tok exceeds moe.num_experts")
            if self.moe.first_k_dense_replace >= self.layers:
                raise ValueError("moe.first_k_dense_replace leaves no MoE layer")
        if self.mla is not None and self.sliding_window is not None:
            raise ValueError("mla with sliding_window is not modelled")
        return self

    # -- layer structure --

    @property
    def moe_layers(self) -> int:
        return 0 if self.moe is None else self.layers - self.moe.first_k_dense_replace

    @property
    def dense_layers(self) -> int:
        """Layers with a dense MLP (all of them for a dense model)."""
        return self.layers - self.moe_layers

    @property
    def global_layers(self) -> int:
        """Layers with full attention over the whole context."""
        sw = self.sliding_window
        return self.layers if sw is None else self.layers // sw.pattern

    @property
    def local_layers(self) -> int:
        """Sliding-window layers, which see (and cache) at most the window."""
        return self.layers - self.global_layers

    # -- parameters --

    @property
    def _mlp_matrices(self) -> int:
        return 3 if self.mlp == "gated" else 2

    @property
    def attention_params_per_layer(self) -> int:
        """Q, K, V and O projections: GQA from the head counts, MLA from its ranks."""
        h, heads = self.hidden_size, self.num_attention_heads
        m = self.mla
        if m is None:
            assert self.head_dim is not None
            return h * self.head_dim * (2 * heads + 2 * self.num_key_value_heads)
        q = (
            h * heads * m.qk_head_dim
            if m.q_lora_rank is None
            else h * m.q_lora_rank + m.q_lora_rank * heads * m.qk_head_dim
        )
        kv_down = h * (m.kv_lora_rank + m.qk_rope_head_dim)
        kv_up = m.kv_lora_rank * heads * (m.qk_nope_head_dim + m.v_head_dim)
        out = heads * m.v_head_dim * h
        return q + kv_down + kv_up + out

    @property
    def dense_mlp_params(self) -> int:
        """One dense MLP layer."""
        return self._mlp_matrices * self.hidden_size * self.intermediate_size

    def _moe_params(self, routed: int) -> int:
        """One MoE layer with ``routed`` routed experts present, shared ones and router."""
        assert self.moe is not None
        expert = self._mlp_matrices * self.hidden_size * self.moe.moe_intermediate_size
        router = self.hidden_size * self.moe.num_experts
        return (routed + self.moe.n_shared_experts) * expert + router

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        """Stored lm_head weights: none when tied to the embedding."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    def _layer_params(self, *, active: bool) -> int:
        moe = 0
        if self.moe is not None:
            routed = self.moe.num_experts_per_tok if active else self.moe.num_experts
            moe = self.moe_layers * self._moe_params(routed)
        return (
            self.layers * self.attention_params_per_layer
            + self.dense_layers * self.dense_mlp_params
            + moe
        )

    @property
    def params_total(self) -> int:
        """All stored parameters (every expert): what the weights occupy."""
        return self.embedding_params + self.lm_head_params + self._layer_params(active=False)

    @property
    def params_active(self) -> int:
        """Parameters one token uses: routed experts only ``num_experts_per_tok``, plus
        the shared experts, dense layers and routers; embeddings and lm_head counted."""
        return self.embedding_params + self.lm_head_params + self._layer_params(active=True)

    @property
    def matmul_params_active(self) -> int:
        """Active weights that take part in a matmul per token: every active layer
        weight and the lm_head (a matmul even when tied); the input embedding is a
        table lookup and is left out."""
        return self._layer_params(active=True) + self.vocab_size * self.hidden_size

    def weight_bytes(self, dtype: Dtype = "bf16") -> int:
        """Bytes of all weights at ``dtype`` (bf16: 2, fp8: 1 byte per parameter)."""
        return self.params_total * dtype_bytes(dtype)

    def weights_touched(self, dtype: Dtype, tokens: float | np.ndarray) -> float | np.ndarray:
        """Weight bytes one engine step reads for a batch of ``tokens`` tokens.

        Dense models read every weight. An MoE step reads the shared weights and, in
        each MoE layer, the experts its tokens are routed to: with uniform routing,
        a fraction ``1 - (1 - k/E)^tokens`` of them (a small batch touches few).
        """
        if self.moe is None:
            return self.weight_bytes(dtype)
        m = self.moe
        expert = self._mlp_matrices * self.hidden_size * m.moe_intermediate_size
        routed = self.moe_layers * m.num_experts * expert
        share = 1 - (1 - m.num_experts_per_tok / m.num_experts) ** np.asarray(tokens, dtype=float)
        return (self.params_total - routed + routed * share) * dtype_bytes(dtype)

    # -- KV cache --

    @property
    def _kv_elements_per_token_layer(self) -> int:
        m = self.mla
        if m is not None:
            return m.kv_lora_rank + m.qk_rope_head_dim  # one latent + RoPE key, no K/V pair
        assert self.head_dim is not None
        return 2 * self.num_key_value_heads * self.head_dim  # K and V

    def kv_bytes_per_token(self, dtype: Dtype = "bf16") -> int:
        """KV-cache bytes one token adds while every layer still keeps it.

        ``2 * layers * num_key_value_heads * head_dim * bytes``; with MLA
        ``(kv_lora_rank + qk_rope_head_dim) * layers * bytes``. For sliding-window
        models this is the rate below the window (all layers as if global); past it
        local layers stop growing: use `kv_bytes`.
        """
        return self.layers * self._kv_elements_per_token_layer * dtype_bytes(dtype)

    def kv_bytes(self, context_tokens: int, dtype: Dtype = "bf16") -> int:
        """KV-cache bytes of one sequence of ``context_tokens``, local layers capped
        at their window."""
        if context_tokens < 0:
            raise ValueError(f"context_tokens must be >= 0, got {context_tokens}")
        local = self._local_tokens(context_tokens)
        per_layer = self._kv_elements_per_token_layer * dtype_bytes(dtype)
        return per_layer * (self.global_layers * context_tokens + self.local_layers * local)

    def _local_tokens(self, context_tokens: int) -> int:
        sw = self.sliding_window
        return context_tokens if sw is None else min(context_tokens, sw.window)

    # -- FLOPs --

    @property
    def linear_flops_per_token(self) -> int:
        """Matmul FLOPs per token outside attention: ``2 * matmul_params_active``."""
        return 2 * self.matmul_params_active

    def attention_flops(self, context_tokens: int) -> int:
        """FLOPs of the attention itself (scores and weighted sum, not the projections)
        for one new token that attends to ``context_tokens`` tokens (itself included).

        Per layer ``2 * heads * (d_qk + d_v) * context``: ``q.k`` over the context
        is ``2 * d_qk`` per key and head, the weighted sum of values ``2 * d_v``. With
        ``d_qk = d_v = head_dim`` this is ``4 * layers * heads * head_dim * context``.
        Local layers see ``min(context, window)``. MLA uses its own head dims,
        ``d_qk = qk_nope + qk_rope = 192`` and ``d_v = v_head_dim = 128`` for
        DeepSeek-V3: the form prefill runs in. Decode kernels often run MLA in the
        "absorbed" form instead, scoring against the latent (``d_qk = kv_lora_rank +
        qk_rope_head_dim``, ``d_v = kv_lora_rank``), which costs ~3.4x these FLOPs
        but reads only the compact cache.
        """
        if context_tokens < 0:
            raise ValueError(f"context_tokens must be >= 0, got {context_tokens}")
        if self.mla is not None:
            d_qk, d_v = self.mla.qk_head_dim, self.mla.v_head_dim
        else:
            assert self.head_dim is not None
            d_qk = d_v = self.head_dim
        per_token = 2 * self.num_attention_heads * (d_qk + d_v)
        local = self._local_tokens(context_tokens)
        return per_token * (self.global_layers * context_tokens + self.local_layers * local)


# --- Loading and lookup ----------------------------------------------------------------


class _GpuFile(Spec):
    gpus: list[GPU] = Field(min_length=1)


class _ModelFile(Spec):
    models: list[ModelArch] = Field(min_length=1)


T = TypeVar("T", GPU, ModelArch)

_VARIANT_SUFFIXES = ("-chat-hf", "-instruct", "-chat", "-base", "-hf", "-it", "-pt")
"""Model-name endings for variants with the same architecture (other weights)."""


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def _model_forms(name: str) -> Iterator[str]:
    """``name`` normalised, without its organisation, and without a variant suffix."""
    key = _norm(name)
    for form in dict.fromkeys((key, key.rpartition("/")[2])):
        yield form
        for suffix in _VARIANT_SUFFIXES:
            if form.endswith(suffix) and len(form) > len(suffix):
                yield form[: -len(suffix)]
                break


def _gpu_forms(name: str) -> Iterator[str]:
    yield _norm(name)


@dataclass(frozen=True)
class _Catalog(Generic[T]):
    """Entries in file order and an index from every accepted spelling to its entry."""

    what: str
    entries: tuple[T, ...]
    index: dict[str, T]
    forms: Callable[[str], Iterable[str]]

    @classmethod
    def build(
        cls, what: str, entries: list[T], forms: Callable[[str], Iterable[str]], path: Path
    ) -> _Catalog[T]:
        index: dict[str, T] = {}
        for entry in entries:
            names = [entry.name, *entry.aliases]
            if isinstance(entry, ModelArch):
                names.append(entry.hf_id)
            for key in (k for n in names for k in forms(n)):
                other = index.setdefault(key, entry)
                if other is not entry:
                    raise InputError(
                        f"{what} name {key!r} is claimed by both {other.name!r} and {entry.name!r}",
                        path=path,
                    )
        return cls(what, tuple(entries), index, forms)

    def find(self, name: str) -> T:
        for key in self.forms(name):
            if key in self.index:
                return self.index[key]
        known = [e.name for e in self.entries]
        close = difflib.get_close_matches(_norm(name), list(self.index), n=1, cutoff=0.6)
        hint = f" (did you mean {self.index[close[0]].name!r}?)" if close else ""
        raise InputError(f"unknown {self.what} {name!r}{hint}; known: {', '.join(known)}")


@functools.cache
def _gpu_catalog() -> _Catalog[GPU]:
    spec = load_yaml_spec(_GpuFile, GPUS_YAML)
    return _Catalog.build("GPU", spec.gpus, _gpu_forms, GPUS_YAML)


@functools.cache
def _model_catalog() -> _Catalog[ModelArch]:
    spec = load_yaml_spec(_ModelFile, MODELS_YAML)
    return _Catalog.build("model", spec.models, _model_forms, MODELS_YAML)


def gpu(name: str) -> GPU:
    """The GPU called ``name`` (or one of its aliases, any case)."""
    return _gpu_catalog().find(name)


def model(name: str) -> ModelArch:
    """The model called ``name``: its catalog name, HF id, an alias, or a variant of
    those (-Instruct, -it, ...), any case."""
    return _model_catalog().find(name)


def gpus() -> tuple[GPU, ...]:
    """Every GPU of the catalog, in file order."""
    return _gpu_catalog().entries


def models() -> tuple[ModelArch, ...]:
    """Every model of the catalog, in file order."""
    return _model_catalog().entries
