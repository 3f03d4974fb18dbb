"""Routers under load, in simulation with fixed seeds: what each policy is for."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import REPO

from wrpfleet.config import Scenario
from wrpfleet.schema import validate
from wrpfleet.sim import SimResult, simulate

H100_8B = {"model": "Llama-3.1-8B", "gpu": "H100-SXM"}
CHAT = [{"preset": "chat"}]


def run(workload: dict[str, Any], pools: list[dict], router: Any, seed: int = 1) -> SimResult:
    s = validate(
        Scenario,
        {
            "name": "load",
            "workload": workload,
            "pools": pools,
            "router": router,
            "seed": seed,
            "outputs": {"timeline": False, "report": False},
        },
    )
    return simulate(s)


@pytest.fixture(scope="module")
def chat_capacity() -> float:
    """Chat requests/s one H100 completes when a closed loop keeps it saturated."""
    closed = {"process": "closed", "users": 256}
    workload = {"arrival": closed, "classes": CHAT, "duration_s": None, "num_requests": 3000}
    return run(workload, [{**H100_8B, "name": "p"}], "least_requests").summary["throughput_req_s"]


@pytest.mark.parametrize("seed", [1, 2])
def test_least_requests_and_power_of_two_beat_random_at_80_percent_load(seed, chat_capacity):
    replicas = 8
    workload = {
        "arrival": {"process": "poisson", "rate": 0.8 * replicas * chat_capacity},
        "classes": CHAT,
        "duration_s": None,
        "num_requests": 4000,
    }
    pools = [{**H100_8B, "name": "p", "replicas": replicas}]
    p99 = {
        name: run(workload, pools, {"policy": name, "params": params}, seed).summary["ttft_p99_s"]
        for name, params in (
            ("random", {"seed": seed}),
            ("power_of_two", {"seed": seed}),
            ("least_requests", {}),
        )
    }
    assert p99["power_of_two"] < p99["random"], p99
    assert p99["least_requests"] < p99["random"], p99


def test_prefix_affinity_raises_hits_and_lowers_ttft_on_mooncake():
    workload = {
        "kind": "trace",
        "path": str(REPO / "workloads" / "traces" / "mooncake_conversation_first1000.jsonl.gz"),
    }
    pools = [{**H100_8B, "name": "p", "replicas": 8, "engine": {"max_model_len": 131072}}]
    least = run(workload, pools, "least_requests").summary
    affinity = run(workload, pools, "prefix_affinity").summary
    assert affinity["prefix_hit_rate"] > 2 * least["prefix_hit_rate"]
    assert affinity["ttft_mean_s"] < 0.95 * least["ttft_mean_s"]


def test_context_length_pools_protect_short_prompts():
    """Short chat and long RAG prompts on four H100s: one mixed pool against a pool of
    three for prompts up to 2,048 tokens and one for the rest."""
    workload = {
        "arrival": {"process": "poisson", "rate": 24.0},
        "classes": [
            {"preset": "chat", "weight": 0.8, "input": {"dist": "constant", "value": 500}},
            {"preset": "rag", "weight": 0.2, "input": {"dist": "constant", "value": 12000}},
        ],
        "duration_s": None,
        "num_requests": 3000,
    }
    mixed = run(workload, [{**H100_8B, "name": "all", "replicas": 4}], "least_requests")
    split = run(
        workload,
        [
            {**H100_8B, "name": "short", "replicas": 3},
            {**H100_8B, "name": "long", "replicas": 1},
        ],
        {
            "policy": "context_length",
            "params": {"routes": [{"pool": "short", "max_input_tokens": 2048}, {"pool": "long"}]},
        },
    )

    def short_p99(res) -> float:
        df = res.requests
        return float(df[df["input_tokens"] <= 2048]["ttft_s"].quantile(0.99))

    assert set(split.requests[split.requests["input_tokens"] > 2048]["pool"]) == {"long"}
    assert short_p99(split) < 0.8 * short_p99(mixed), (short_p99(split), short_p99(mixed))


def test_cascade_and_bandit_trade_quality_against_cost():
    """Easy chat and hard reasoning on a small (8B, one H100) and a big (70B, four
    H100s) pool: the cascade answers better than the small model alone and costs less
    than the big one alone; the bandit learns to send the hard requests to the big
    model and the easy ones to the small."""
    workload = {
        "arrival": {"process": "poisson", "rate": 4.0},
        "classes": [
            {
                "preset": "chat",
                "output": 100,
                "difficulty": {"dist": "uniform", "low": 0.0, "high": 0.3},
            },
            {
                "preset": "reasoning",
                "output": 100,
                "difficulty": {"dist": "uniform", "low": 0.6, "high": 0.9},
            },
        ],
        "duration_s": None,
        "num_requests": 1500,
    }
    pools = [
        {**H100_8B, "name": "small", "replicas": 1},
        {"model": "Llama-3.1-70B", "gpu": "H100-SXM", "tp": 4, "name": "big", "replicas": 1},
    ]

    def only(pool: str) -> dict:
        return {"policy": "context_length", "params": {"routes": [{"pool": pool}]}}

    small, big = run(workload, pools, only("small")), run(workload, pools, only("big"))
    cascade = run(workload, pools, {"policy": "cascade", "params": {"threshold": 0.8}})
    q = {k: r.summary["quality_mean"] for k, r in (("small", small), ("big", big), ("c", cascade))}
    assert q["small"] < q["c"] <= q["big"] + 0.02, q
    assert cascade.summary["usd_per_m_output_tokens"] < big.summary["usd_per_m_output_tokens"]
    bandit = run(workload, pools, {"policy": "bandit", "params": {"exploration": 0.2}}).requests
    late = bandit[bandit["id"] >= 750]
    share_big = late.groupby("category")["pool"].apply(lambda s: (s == "big").mean())
    assert share_big["reasoning"] > 0.7 and share_big["chat"] < 0.3, share_big
