"""GPU and model catalogs: the numbers match their sources and the derived quantities
match the published ones (parameter counts, KV bytes per token)."""

from __future__ import annotations

import pytest

from wrpfleet.errors import InputError
from wrpfleet.pool import catalog
from wrpfleet.pool.catalog import GPU, ModelArch, gpu, gpus, model, models
from wrpfleet.schema import validate

KiB = 1024


# --- Models: derived numbers against published ones -----------------------------------


@pytest.mark.parametrize(
    "name, kib",
    [("Llama-3.1-8B", 128), ("Llama-3.1-70B", 320), ("Qwen3-8B", 144), ("Qwen3-32B", 256)],
)
def test_kv_bytes_per_token_match_sources(name, kib):
    """SOURCES.md: KV cache bytes per token at BF16; FP8 halves them."""
    m = model(name)
    assert m.kv_bytes_per_token("bf16") == kib * KiB
    assert m.kv_bytes_per_token("fp8") == kib * KiB // 2
    assert m.kv_bytes_per_token() == kib * KiB  # BF16 is the default


PUBLISHED = [
    # name, total (billions), active (billions; None: dense, active == total)
    ("Llama-3.1-8B", 8.03, None),
    ("Llama-3.1-70B", 70.6, None),
    ("Llama-3.1-405B", 405.9, None),
    ("Llama-3.3-70B", 70.6, None),
    ("Qwen3-8B", 8.19, None),
    ("Qwen3-14B", 14.8, None),
    ("Qwen3-32B", 32.8, None),
    ("Qwen3-30B-A3B", 30.5, 3.3),
    ("Qwen3-235B-A22B", 235, 22),
    ("gemma-3-27b", 27.0, None),  # language model only (the vision tower is ~0.42B more)
    ("DeepSeek-V3", 671, 37),  # without the multi-token-prediction layer, as published
    ("Llama-2-70B", 69, None),
    ("BLOOM-176B", 176, None),
]


@pytest.mark.parametrize("name, total_b, active_b", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_parameter_counts_match_published(name, total_b, active_b):
    m = model(name)
    assert m.params_total == pytest.approx(total_b * 1e9, rel=0.02)
    if active_b is None:
        assert m.params_active == m.params_total
    else:
        assert m.params_active == pytest.approx(active_b * 1e9, rel=0.02)
        assert m.params_active < m.params_total / 5


@pytest.mark.parametrize(
    "name, hub_total", [("Llama-3.1-8B", 8_030_261_248), ("Llama-3.1-70B", 70_553_706_496)]
)
def test_parameter_counts_are_exact_up_to_the_norms(name, hub_total):
    """The 2 % above would let a wrong MLP width through; the Hub's safetensors
    totals pin the shape exactly once the RMSNorm weights we skip are added back."""
    m = model(name)
    norms = (2 * m.layers + 1) * m.hidden_size
    assert m.params_total + norms == hub_total


def _siglip_vision_params(layers=27, hidden=1152, mlp=4304, patch=14, image=896) -> int:
    """SigLIP-So400m as gemma-3's vision_config gives it (biased linears, layer norms)."""
    per_layer = 4 * (hidden * hidden + hidden) + 2 * hidden * mlp + mlp + hidden + 4 * hidden
    embeddings = 3 * patch * patch * hidden + hidden + (image // patch) ** 2 * hidden
    return layers * per_layer + embeddings + 2 * hidden


def test_gemma_3_12b_published_count_includes_the_vision_tower():
    """The published 12.2B counts the whole checkpoint; the language model alone is
    11.77B (3.6 % less). Adding the SigLIP tower and the projector recovers it: the
    catalog's shape is right, the published figure is of a bigger thing."""
    m = model("gemma-3-12b")
    assert m.params_total == pytest.approx(11.77e9, rel=0.002)
    projector = 1152 * m.hidden_size + 1152
    whole = m.params_total + _siglip_vision_params() + projector
    assert whole == pytest.approx(12.2e9, rel=0.02)
    # Exactly 12,187,325,040 on the Hub once the 765,696 norm weights we skip are added.
    assert whole == pytest.approx(12_187_325_040, rel=1e-4)


def test_moe_and_mla_structure():
    ds = model("DeepSeek-V3")
    assert (ds.dense_layers, ds.moe_layers) == (3, 58)
    assert ds.kv_bytes_per_token("bf16") == (512 + 64) * 61 * 2  # latent + RoPE key, no K/V pair
    assert ds.kv_bytes_per_token("fp8") == (512 + 64) * 61
    qwen = model("Qwen3-30B-A3B")
    assert (qwen.dense_layers, qwen.moe_layers) == (0, 48)
    # active = total minus the 120 unused routed experts of every layer
    expert = 3 * qwen.hidden_size * 768
    assert qwen.params_total - qwen.params_active == 48 * 120 * expert


def test_bloom_is_mha_with_a_two_matrix_mlp():
    b = model("bloom-176b")
    h = b.hidden_size
    assert b.num_key_value_heads == b.num_attention_heads
    assert b.mlp == "plain" and b.position_encoding == "alibi"
    assert b.dense_mlp_params == 2 * h * 4 * h
    assert b.attention_params_per_layer == 4 * h * h
    assert b.kv_bytes_per_token() == 2 * 70 * 112 * 128 * 2


def test_sliding_window_layers_cap_the_kv_cache():
    g = model("gemma-3-12b")
    assert (g.global_layers, g.local_layers) == (8, 40)
    per_layer_token = 2 * 8 * 256 * 2  # K and V, 8 KV heads of 256, BF16
    assert g.kv_bytes_per_token() == 48 * per_layer_token
    # Below the window every layer holds every token.
    assert g.kv_bytes(1000) == 1000 * g.kv_bytes_per_token()
    # Past it the 40 local layers stop at 1024 tokens.
    assert g.kv_bytes(32768) == per_layer_token * (8 * 32768 + 40 * 1024)
    assert g.kv_bytes(32768, "fp8") == g.kv_bytes(32768) // 2
    assert (model("gemma-3-27b").global_layers, model("gemma-3-27b").local_layers) == (10, 52)
    # Dense models: kv_bytes is linear in the context.
    llama = model("Llama-3.1-8B")
    assert llama.kv_bytes(5000) == 5000 * llama.kv_bytes_per_token()


def test_attention_flops():
    llama = model("Llama-3.1-8B")
    assert llama.attention_flops(1000) == 4 * 32 * 32 * 128 * 1000
    assert llama.attention_flops(0) == 0
    g = model("gemma-3-27b")
    assert g.attention_flops(8192) == 4 * 32 * 128 * (10 * 8192 + 52 * 1024)
    assert g.attention_flops(512) == 4 * 62 * 32 * 128 * 512
    ds = model("DeepSeek-V3")
    assert ds.attention_flops(4096) == 2 * 61 * 128 * (192 + 128) * 4096
    with pytest.raises(ValueError):
        llama.attention_flops(-1)


def test_linear_flops_count_the_lm_head_and_not_the_embedding_lookup():
    llama = model("Llama-3.1-8B")  # untied: the lm_head is stored and multiplied
    vh = llama.vocab_size * llama.hidden_size
    assert llama.linear_flops_per_token == 2 * (llama.params_total - vh)
    gemma = model("gemma-3-12b")  # tied: the one table is both lookup and lm_head
    assert gemma.linear_flops_per_token == 2 * gemma.params_total
    ds = model("DeepSeek-V3")  # MoE: only the active experts
    assert ds.linear_flops_per_token == 2 * (ds.params_active - ds.vocab_size * ds.hidden_size)


def test_weight_bytes():
    m = model("Llama-3.1-70B")
    assert m.weight_bytes("bf16") == 2 * m.params_total
    assert m.weight_bytes("fp8") == m.params_total
    with pytest.raises(InputError, match="unknown dtype 'int4'; known: bf16, fp8"):
        m.weight_bytes("int4")  # type: ignore[arg-type]


def test_every_model_has_a_source_and_loads_consistently():
    names = [m.name for m in models()]
    assert len(names) == 14 and len(set(names)) == 14
    for m in models():
        assert "huggingface.co/" in m.source and "config.json" in m.source, m.name
        assert m.params_total > 0 and m.kv_bytes_per_token() > 0


# --- GPUs: numbers as SOURCES.md gives them ---------------------------------------------

SOURCES_MD = {
    # name: bf16 TFLOP/s, HBM GB/s, memory GiB, TDP W
    "A100-80GB": (312, 2040, 80, 400),
    "H100-SXM": (989, 3350, 80, 700),
    "H200": (989, 4800, 141, 700),
    "B200": (2250, 8000, 180, 1000),
    "L40S": (362, 864, 48, 350),
    "L4": (121, 300, 24, 72),
    "MI300X": (1307, 5300, 192, 750),
}


@pytest.mark.parametrize("name", SOURCES_MD)
def test_gpu_numbers_match_sources(name):
    g = gpu(name)
    bf16, hbm, mem, tdp = SOURCES_MD[name]
    assert g.bf16_tflops == bf16
    # A100: the datasheet's 2,039 GB/s, which SOURCES.md rounds to 2.04 TB/s;
    # B200: SOURCES.md gives 7.7-8 TB/s.
    assert g.hbm_bandwidth_gb_s == pytest.approx(hbm, abs=1 if name != "B200" else 300)
    assert g.memory_gib == mem
    assert g.tdp_w == tdp


def test_gpu_details_from_sources_and_datasheets():
    assert gpu("A100-80GB").hbm_bandwidth_gb_s in (2039, 2040)
    assert 7700 <= gpu("B200").hbm_bandwidth_gb_s <= 8000
    # splitwise-sim's measured idle power
    assert (gpu("A100-80GB").idle_w, gpu("H100-SXM").idle_w) == (63, 75)
    # dense FP8; Ampere has none
    fp8 = {g.name: g.fp8_tflops for g in gpus()}
    assert fp8 == {
        "A100-80GB": None,
        "H100-SXM": 1979,
        "H200": 1979,
        "B200": 4500,
        "L40S": 733,
        "L4": 242.5,
        "MI300X": 2615,
    }
    links = {g.name: g.interconnect_gb_s for g in gpus()}
    assert links == {
        "A100-80GB": 300,
        "H100-SXM": 450,
        "H200": 450,
        "B200": 900,
        "L40S": None,
        "L4": None,
        "MI300X": 448,
    }
    assert {g.name: g.pcie_gb_s for g in gpus()} == {
        "A100-80GB": 32,
        "H100-SXM": 64,
        "H200": 64,
        "B200": 64,
        "L40S": 32,
        "L4": 32,
        "MI300X": 64,
    }


def test_prices_are_the_low_end_of_sources_ranges_or_labelled_estimates():
    low_end = {"H100-SXM": 2.99, "A100-80GB": 1.79, "B200": 6.69, "L40S": 0.86, "MI300X": 1.71}
    for g in gpus():
        assert g.price_date
        source = g.sources["price_per_gpu_hour"]
        if g.name in low_end:
            assert g.price_per_gpu_hour == low_end[g.name]
            assert "public on-demand list prices seen in 2026 (SOURCES.md)" in source
            assert "price_per_gpu_hour" not in g.estimated
        else:  # H200 and L4: SOURCES.md has no price
            assert "price_per_gpu_hour" in g.estimated
            assert source.startswith("estimate"), g.name


def test_idle_estimates_follow_the_documented_rule():
    """Without a measurement, idle power is H100's measured fraction of TDP (75/700)."""
    estimated = [g for g in gpus() if "idle_w" in g.estimated]
    assert {g.name for g in estimated} == {"H200", "B200", "L40S", "L4", "MI300X"}
    for g in estimated:
        assert g.idle_w == pytest.approx(g.tdp_w * 75 / 700, abs=0.05), g.name
        assert g.sources["idle_w"].startswith("estimate"), g.name


def test_every_gpu_number_has_a_source():
    for g in gpus():
        for field in GPU.NUMBERS:
            if getattr(g, field) is not None:
                assert g.sources.get(field), f"{g.name}.{field}"


def test_gpu_spec_rejects_an_unsourced_number():
    entry = gpu("H100-SXM").model_dump()
    del entry["sources"]["tdp_w"]
    with pytest.raises(InputError, match=r"missing for \['tdp_w'\]"):
        validate(GPU, entry)
    entry = gpu("H100-SXM").model_dump()
    entry["estimated"] = ["speed"]
    with pytest.raises(InputError, match="unknown fields"):
        validate(GPU, entry)


def test_model_spec_requires_head_dim_without_mla():
    entry = model("Qwen3-8B").model_dump()
    entry["head_dim"] = None
    with pytest.raises(InputError, match="head_dim is required"):
        validate(ModelArch, entry)


def test_matmul_flops_fall_back_to_bf16_without_fp8_units():
    assert gpu("A100").matmul_flops("fp8") == gpu("A100").matmul_flops("bf16") == 312e12
    assert gpu("H100").matmul_flops("fp8") == 1979e12
    assert gpu("H100").memory_bytes == 80 * 2**30


# --- Names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "alias, name",
    [
        ("meta-llama/Llama-3.1-8B-Instruct", "Llama-3.1-8B"),
        ("meta-llama/Llama-3.1-8B", "Llama-3.1-8B"),
        ("llama-3.1-8b", "Llama-3.1-8B"),
        ("meta-llama/Meta-Llama-3.1-70B-Instruct", "Llama-3.1-70B"),
        ("meta-llama/Llama-3.3-70B-Instruct", "Llama-3.3-70B"),
        ("Qwen/Qwen3-14B", "Qwen3-14B"),
        ("qwen3-30b-a3b", "Qwen3-30B-A3B"),
        ("google/gemma-3-12b-it", "gemma-3-12b"),
        ("google/gemma-3-27b-pt", "gemma-3-27b"),
        ("deepseek-ai/DeepSeek-V3-0324", "DeepSeek-V3"),
        ("llama2-70b", "Llama-2-70B"),
        ("meta-llama/Llama-2-70b-chat-hf", "Llama-2-70B"),
        ("bloom-176b", "BLOOM-176B"),
        ("bigscience/bloom", "BLOOM-176B"),
    ],
)
def test_model_aliases_resolve(alias, name):
    assert model(alias).name == name


@pytest.mark.parametrize(
    "alias, name",
    [
        ("a100-80gb", "A100-80GB"),
        ("A100-SXM4-80GB", "A100-80GB"),
        ("h100-80gb", "H100-SXM"),
        ("H100", "H100-SXM"),
        ("h100-sxm", "H100-SXM"),
        ("B200", "B200"),
        ("mi300x", "MI300X"),
    ],
)
def test_gpu_aliases_resolve(alias, name):
    assert gpu(alias).name == name


def test_unknown_names_list_the_known_ones():
    with pytest.raises(InputError) as exc:
        gpu("H10")
    msg = str(exc.value)
    assert "unknown GPU 'H10' (did you mean 'H100-SXM'?)" in msg
    assert all(g.name in msg for g in gpus())
    with pytest.raises(InputError) as exc:
        model("Llama-3.1-9B")
    msg = str(exc.value)
    assert "unknown model 'Llama-3.1-9B' (did you mean 'Llama-3.1-8B'?)" in msg
    assert all(m.name in msg for m in models())
    with pytest.raises(InputError, match=r"^unknown model 'gpt-4'; known: Llama-3\.1-8B, "):
        model("gpt-4")


def test_catalog_is_loaded_once():
    assert model("Qwen3-8B") is model("qwen/qwen3-8b")
    assert catalog.gpus() is catalog.gpus()


def test_a_name_claimed_by_two_entries_is_an_error(tmp_path):
    h100 = gpu("H100-SXM")
    clash = h100.model_copy(update={"name": "H100-PCIe", "aliases": ["H100"]})
    with pytest.raises(InputError, match="'h100' is claimed by both 'H100-SXM' and 'H100-PCIe'"):
        catalog._Catalog.build("GPU", [h100, clash], catalog._gpu_forms, tmp_path / "gpus.yaml")
