"""Correctness of the discrete-event simulator: step times from the performance model,
queueing theory, conservation laws, KV capacity and preemption, the prefix cache,
fast mode against the step-by-step reference, and session release times.

Every expectation is computed from a `PerfModel` the test builds with explicit
constants (patched in for the simulator too), so the tests hold whatever the
fitted constants in ``wrpfleet/pool/fitted.json`` are.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from wrpfleet.config import Scenario
from wrpfleet.pool.catalog import gpu, model
from wrpfleet.pool.perf import Batch, Constants, PerfModel
from wrpfleet.schema import validate
from wrpfleet.sim.fleet import GIB, RUNTIME_RESERVE_GIB, Simulation, kv_blocks
from wrpfleet.sim.run import SimResult, simulate

GPU, MODEL = "H100-SXM", "Llama-3.1-8B"

# Deliberately not the defaults, so a test cannot pass by leaning on them.
CONSTANTS = Constants(
    compute_eff=0.55,
    memory_eff=0.75,
    overlap_p=2.5,
    step_overhead_s=0.003,
    seq_overhead_s=3e-5,
    allreduce_latency_s=2e-5,
    power_floor=0.2,
    power_compute=0.5,
    power_memory=0.5,
)


@pytest.fixture(autouse=True)
def _explicit_constants(monkeypatch):
    """Every PerfModel the simulator builds uses CONSTANTS, not fitted.json."""
    monkeypatch.setattr(Constants, "fitted", classmethod(lambda cls, *a, **k: CONSTANTS))


def perf() -> PerfModel:
    return PerfModel(gpu(GPU), model(MODEL), 1, "bf16", CONSTANTS)


# ----------------------------------------------------------------------------- helpers


def write_trace(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A generic CSV trace; prefix_blocks given as a sequence of ints."""
    cols = list(rows[0])
    lines = [",".join(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r[c]
            cells.append(" ".join(map(str, v)) if c == "prefix_blocks" else str(v))
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def trace_workload(path: Path) -> dict[str, Any]:
    return {"kind": "trace", "path": str(path)}


def synthetic(
    classes: list[dict[str, Any]], num_requests: int, arrival: dict[str, Any] | float
) -> dict[str, Any]:
    if not isinstance(arrival, dict):
        arrival = {"process": "poisson", "rate": arrival}
    return {
        "arrival": arrival,
        "classes": classes,
        "num_requests": num_requests,
        "duration_s": None,
    }


def make_scenario(
    workload: dict[str, Any],
    engine: dict[str, Any] | None = None,
    replicas: int = 1,
    router: str = "round_robin",
    seed: int = 0,
    name: str = "t",
) -> Scenario:
    pool = {"name": "p", "model": MODEL, "gpu": GPU, "replicas": replicas}
    if engine:
        pool["engine"] = engine
    return validate(
        Scenario,
        {"name": name, "workload": workload, "pools": [pool], "router": router, "seed": seed},
    )


def utilization_for_blocks(blocks: int, max_num_batched_tokens: int = 8192) -> float:
    """The gpu_memory_utilization at which a replica gets ``blocks`` KV blocks
    (inverting `kv_blocks`), checked against it."""
    p, m = perf(), model(MODEL)
    activations = max_num_batched_tokens * (m.hidden_size + m.intermediate_size) * 4
    need = p.weight_bytes + RUNTIME_RESERVE_GIB * GIB + activations
    need += (blocks + 0.5) * p.kv_bytes * 16
    util = need / (gpu(GPU).memory_gib * GIB)
    pool = validate(
        Scenario,
        {
            "name": "u",
            "workload": synthetic([{}], 1, 1.0),
            "pools": [
                {
                    "name": "p",
                    "model": MODEL,
                    "gpu": GPU,
                    "engine": {
                        "gpu_memory_utilization": util,
                        "max_num_batched_tokens": max_num_batched_tokens,
                        "max_num_seqs": min(256, max_num_batched_tokens),
                    },
                }
            ],
        },
    ).pools[0]
    assert kv_blocks(pool, p) == blocks
    return util


def run_sim(scenario: Scenario, fast: bool = True) -> tuple[Simulation, SimResult]:
    """Run through a Simulation object, so the replicas can be inspected afterwards."""
    sim = Simulation(scenario, fast=fast)
    sim.run()
    return sim, SimResult.of(sim)


def completed(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["rejected"].isna()]


def prefill(p: PerfModel, tokens: int, computed: int = 0) -> float:
    return float(
        p.iteration_time(
            Batch(
                prefill_tokens=tokens,
                prefill_seqs=1,
                prefill_attn=tokens * (computed + (tokens + 1) / 2),
                prefill_kv_read=computed,
            )
        )
    )


def decode(p: PerfModel, ctx: int) -> float:
    return float(p.iteration_time(Batch(decode_seqs=1, decode_ctx=ctx)))


def service_time(p: PerfModel, input_tokens: int, output_tokens: int) -> float:
    """One request alone on a replica (one prefill step, then one decode step per token)."""
    return prefill(p, input_tokens) + sum(
        decode(p, input_tokens + k + 1) for k in range(output_tokens - 1)
    )


def check_invariants(res: SimResult) -> None:
    """Conservation laws every run must satisfy."""
    s, df, reps = res.summary, res.requests, res.replicas
    assert s["requests_in"] == s["completed"] + s["rejected"] + s["unfinished"]
    assert s["requests_in"] == len(df) + s["unfinished"]
    assert s["unfinished"] == 0 and (reps["unfinished"] == 0).all()
    assert df["id"].is_unique
    # Energy: the requests' shares plus idle energy are the total.
    total = s["energy_kwh"] * 3.6e6
    shares = float(np.nansum(df["energy_j"])) + float(reps["idle_energy_j"].sum())
    assert shares == pytest.approx(total, rel=1e-6)
    assert float(np.nansum(df["energy_j"])) == pytest.approx(
        float(reps["active_energy_j"].sum()), rel=1e-6
    )
    # Cost: the requests' shares are the replicas' busy time at their price.
    assert float(np.nansum(df["cost_usd"])) == pytest.approx(
        float(reps["active_cost_usd"].sum()), rel=1e-6
    )
    assert (reps["active_cost_usd"] <= reps["cost_usd"] * (1 + 1e-12)).all()
    # Busy time never exceeds the run.
    assert (reps["busy_s"] <= s["duration_s"] * (1 + 1e-12)).all()
    assert (reps["busy_s"] >= 0).all() and (reps["idle_energy_j"] >= 0).all()
    done = completed(df)
    assert (done["queue_s"] >= -1e-12).all()
    assert (done["queue_s"] <= done["ttft_s"] + 1e-12).all()
    assert (done["ttft_s"] <= done["e2e_s"] + 1e-12).all()
    assert (done["released_s"] >= done["arrival_s"] - 1e-9).all()
    assert (done["released_s"] + done["e2e_s"] <= s["duration_s"] * (1 + 1e-12)).all()
    assert (done["energy_j"] > 0).all()
    # Rejected rows carry no measurements.
    rej = df[df["rejected"].notna()]
    assert rej[["queue_s", "ttft_s", "e2e_s", "energy_j", "cost_usd"]].isna().all().all()


# ----------------------------------------------------------------------------- 1. step times


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
def test_single_request_times_follow_the_perf_model(tmp_path, fast):
    p = perf()
    path = write_trace(
        tmp_path / "one.csv", [{"arrival_s": 0.0, "input_tokens": 1000, "output_tokens": 100}]
    )
    s = make_scenario(trace_workload(path), {"max_num_batched_tokens": 2048})
    sim, res = run_sim(s, fast)
    row = res.requests.iloc[0]
    ttft = prefill(p, 1000)
    assert ttft == float(
        p.iteration_time(
            Batch(
                prefill_tokens=1000,
                prefill_seqs=1,
                prefill_attn=1000 * (0 + 1001 / 2),
                prefill_kv_read=0,
            )
        )
    )
    decodes = [decode(p, 1000 + k + 1) for k in range(99)]
    assert row["queue_s"] == 0.0
    assert row["ttft_s"] == pytest.approx(ttft, rel=1e-9)
    assert row["e2e_s"] == pytest.approx(ttft + sum(decodes), rel=1e-9)
    assert row["tpot_s"] == pytest.approx(sum(decodes) / 99, rel=1e-9)
    # The context grows: the last decode step is slower than the first.
    assert decodes[-1] > decodes[0]
    # Energy: power x time of each step, all of it this request's.
    steps = [
        Batch(prefill_tokens=1000, prefill_seqs=1, prefill_attn=1000 * 1001 / 2, prefill_kv_read=0)
    ] + [Batch(decode_seqs=1, decode_ctx=1000 + k + 1) for k in range(99)]
    energy = sum(
        float(p.power_w(b, p.iteration_time(b))) * float(p.iteration_time(b)) for b in steps
    )
    assert row["energy_j"] == pytest.approx(energy, rel=1e-9)
    # Cost: every step's time at the GPU's price, all of it this request's.
    price = gpu(GPU).price_per_gpu_hour
    assert row["cost_usd"] == pytest.approx(price * (ttft + sum(decodes)) / 3600, rel=1e-9)
    assert res.summary["engine_steps"] == 100
    assert res.replicas["busy_s"].iloc[0] == pytest.approx(row["e2e_s"], rel=1e-9)
    assert res.summary["duration_s"] == pytest.approx(row["e2e_s"], rel=1e-9)
    idle_w = p.idle_power_w
    assert res.replicas["idle_energy_j"].iloc[0] == pytest.approx(
        idle_w * (res.summary["duration_s"] - res.replicas["busy_s"].iloc[0]), abs=1e-6
    )
    sim.replicas["p-0"].kv.check()


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
def test_chunked_prefill_sums_the_chunk_steps(tmp_path, fast):
    p = perf()
    path = write_trace(
        tmp_path / "one.csv", [{"arrival_s": 0.0, "input_tokens": 1000, "output_tokens": 100}]
    )
    s = make_scenario(trace_workload(path), {"max_num_batched_tokens": 256})
    _, res = run_sim(s, fast)
    row = res.requests.iloc[0]
    chunks = [(256, 0), (256, 256), (256, 512), (232, 768)]
    ttft = sum(prefill(p, n, done) for n, done in chunks)
    assert row["ttft_s"] == pytest.approx(ttft, rel=1e-9)
    assert row["ttft_s"] > prefill(p, 1000)  # four steps cost more than one
    decodes = sum(decode(p, 1000 + k + 1) for k in range(99))
    assert row["e2e_s"] == pytest.approx(ttft + decodes, rel=1e-9)
    assert res.summary["engine_steps"] == 4 + 99


# ----------------------------------------------------------------------------- 2. queueing


def lindley(arrivals: np.ndarray, service: np.ndarray) -> np.ndarray:
    """Waiting times of a FCFS single server: W[k] = max(0, W[k-1] + S[k-1] - gap)."""
    w = np.zeros(len(arrivals))
    for k in range(1, len(arrivals)):
        w[k] = max(0.0, w[k - 1] + service[k - 1] - (arrivals[k] - arrivals[k - 1]))
    return w


def batch_one(rate: float, output: Any, n: int, seed: int) -> SimResult:
    s = make_scenario(
        synthetic([{"input": 200, "output": output}], n, rate),
        {"max_num_seqs": 1, "enable_prefix_caching": False},
        seed=seed,
    )
    return simulate(s)


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_batch_one_replica_is_an_md1_queue(rho):
    p = perf()
    service = service_time(p, 200, 8)
    n = 20_000
    res = batch_one(rho / service, 8, n, seed=1)
    df = res.requests.sort_values("id")
    check_invariants(res)
    assert len(completed(df)) == n
    # Deterministic service: every request takes S once it is scheduled.
    np.testing.assert_allclose(df["e2e_s"] - df["queue_s"], service, rtol=1e-9)
    # FCFS single server: waits follow Lindley's recursion on these very arrivals.
    arrivals = df["released_s"].to_numpy()
    np.testing.assert_allclose(
        df["queue_s"].to_numpy(), lindley(arrivals, np.full(n, service)), rtol=1e-7, atol=1e-9
    )
    # And the mean wait is M/D/1's, at the utilisation these arrivals give.
    lam = (n - 1) / (arrivals[-1] - arrivals[0])
    real_rho = lam * service
    assert real_rho == pytest.approx(rho, rel=0.03)
    wq = real_rho * service / (2 * (1 - real_rho))
    assert df["queue_s"].mean() == pytest.approx(wq, rel=0.10)


def test_batch_one_replica_is_an_mg1_queue():
    p = perf()
    mean_out = 30
    # Mean service time of exponential output lengths, from the perf model.
    rng = np.random.default_rng(1)
    outs = np.maximum(1, np.round(rng.exponential(mean_out, 2000))).astype(int)
    est = float(np.mean([service_time(p, 200, int(o)) for o in outs[:300]]))
    rho = 0.7
    rate = rho / est
    n = 20_000
    res = batch_one(rate, {"dist": "exponential", "mean": mean_out}, n, seed=3)
    df = res.requests.sort_values("id")
    check_invariants(res)
    service = (df["e2e_s"] - df["queue_s"]).to_numpy()
    # Service depends on the output length only.
    expected = {o: service_time(p, 200, o) for o in sorted(df["output_tokens"].unique())[:20]}
    for o, t in expected.items():
        np.testing.assert_allclose(service[df["output_tokens"].to_numpy() == o], t, rtol=1e-9)
    arrivals = df["released_s"].to_numpy()
    np.testing.assert_allclose(
        df["queue_s"].to_numpy(), lindley(arrivals, service), rtol=1e-7, atol=1e-9
    )
    lam = (n - 1) / (arrivals[-1] - arrivals[0])
    es, es2 = service.mean(), (service**2).mean()
    real_rho = lam * es
    assert 0.6 < real_rho < 0.8
    wq = lam * es2 / (2 * (1 - real_rho))  # Pollaczek-Khinchine
    assert df["queue_s"].mean() == pytest.approx(wq, rel=0.10)


def test_batch_one_replica_with_long_exponential_answers_is_an_mm1_queue():
    """Exponential answers much longer than the prompt make the service time nearly
    exponential: the mean wait is M/M/1's, rho E[S] / (1 - rho)."""
    mean_out, rho, n = 200, 0.7, 20_000
    es = service_time(perf(), 200, mean_out)  # close to the mean service time
    res = batch_one(rho / es, {"dist": "exponential", "mean": mean_out}, n, seed=5)
    df = res.requests.sort_values("id")
    service = (df["e2e_s"] - df["queue_s"]).to_numpy()
    assert service.std() / service.mean() == pytest.approx(1.0, abs=0.05)
    arrivals = df["released_s"].to_numpy()
    real_rho = (n - 1) / (arrivals[-1] - arrivals[0]) * service.mean()
    assert real_rho == pytest.approx(rho, rel=0.05)
    wq = real_rho * service.mean() / (1 - real_rho)  # M/M/1
    assert df["queue_s"].mean() == pytest.approx(wq, rel=0.10)


# ----------------------------------------------------------------------------- 3. conservation


CONSERVATION = {
    "chat-2-replicas": (
        synthetic([{"preset": "chat"}], 120, 6.0),
        {"max_num_seqs": 32},
        2,
    ),
    "mix-least-requests": (
        synthetic([{"preset": "code"}, {"preset": "rag", "weight": 0.5}], 100, 5.0),
        {"max_num_batched_tokens": 2048},
        3,
    ),
    "max-model-len": (
        synthetic(
            [{"input": {"dist": "lognormal", "mean": 800, "cv": 1.0}, "output": 200}], 100, 4.0
        ),
        {"max_model_len": 1024},
        1,
    ),
    "sessions": (
        synthetic([{"preset": "multiturn"}], 80, 1.0),
        {},
        2,
    ),
}


@pytest.mark.parametrize("name", list(CONSERVATION))
def test_conservation(name):
    workload, engine, replicas = CONSERVATION[name]
    router = "least_requests" if "least" in name else "round_robin"
    s = make_scenario(workload, engine, replicas, router)
    sim, res = run_sim(s)
    check_invariants(res)
    df = res.requests
    assert res.summary["completed"] > 0
    if name == "max-model-len":
        rej = df[df["rejected"].notna()]
        assert res.summary["rejected"] == len(rej) > 0
        assert (rej["input_tokens"] + rej["output_tokens"] > 1024).all()
        assert rej["rejected"].str.contains("max_model_len 1024").all()
        done = completed(df)
        assert (done["input_tokens"] + done["output_tokens"] <= 1024).all()
    else:
        assert res.summary["rejected"] == 0
    for r in sim.replicas.values():
        r.kv.check()
        assert r.kv.used == 0


# ----------------------------------------------------------------------------- 4. KV capacity


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
def test_preemption_when_kv_runs_out(tmp_path, fast):
    p = perf()
    blocks = 100  # 1600 tokens: one request fits, eight do not
    util = utilization_for_blocks(blocks)
    rows = [{"arrival_s": 0.01 * i, "input_tokens": 200, "output_tokens": 400} for i in range(8)]
    path = write_trace(tmp_path / "kv.csv", rows)
    s = make_scenario(trace_workload(path), {"gpu_memory_utilization": util})
    sim, res = run_sim(s, fast)
    replica = sim.replicas["p-0"]
    assert replica.kv.total == blocks
    replica.kv.check()
    assert replica.kv.used == 0 and replica.kv.free + replica.kv.evictable_blocks == blocks
    check_invariants(res)
    df = res.requests
    assert res.summary["completed"] == 8 and res.summary["rejected"] == 0
    assert res.summary["preemptions"] > 0 and (df["preemptions"] > 0).any()
    assert (df["e2e_s"] > df["ttft_s"]).all()
    # Each request still decoded all its tokens: at least 399 decode steps after its first.
    min_decode = 399 * decode(p, 201)
    assert (df["e2e_s"] - df["ttft_s"] >= min_decode).all()
    # Against the same trace with room for everyone: no preemption, fewer steps, sooner done.
    _, roomy = run_sim(make_scenario(trace_workload(path)), fast)
    assert roomy.summary["preemptions"] == 0
    assert res.summary["engine_steps"] > roomy.summary["engine_steps"]
    assert res.summary["duration_s"] > roomy.summary["duration_s"]


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
def test_kv_stays_conserved_with_prefix_cache_under_pressure(fast):
    util = utilization_for_blocks(300)
    s = make_scenario(
        synthetic([{"preset": "code", "output": 200}], 60, 20.0),
        {"gpu_memory_utilization": util, "max_num_batched_tokens": 8192},
        seed=4,
    )
    sim, res = run_sim(s, fast)
    check_invariants(res)
    kv = sim.replicas["p-0"].kv
    kv.check()
    assert kv.used == 0
    assert res.summary["preemptions"] > 0
    # Cached tokens are prompt tokens served from the cache: never more than the prompt,
    # and the hit rate (cached / prompt tokens) is a fraction, preemptions or not.
    done = completed(res.requests)
    over = done[done["cached_tokens"] > done["input_tokens"]]
    assert over.empty, over[["id", "input_tokens", "cached_tokens", "preemptions"]]
    assert 0 <= res.summary["prefix_hit_rate"] <= 1


def test_request_larger_than_the_kv_cache_is_rejected(tmp_path):
    blocks = 100
    util = utilization_for_blocks(blocks)
    rows = [
        {"arrival_s": 0.0, "input_tokens": 1000, "output_tokens": 1000},  # 125 blocks
        {"arrival_s": 0.5, "input_tokens": 800, "output_tokens": 800},  # exactly 100 blocks
    ]
    path = write_trace(tmp_path / "big.csv", rows)
    s = make_scenario(trace_workload(path), {"gpu_memory_utilization": util})
    sim, res = run_sim(s)
    df = res.requests.set_index("id")
    assert df.loc[0, "rejected"] == "needs 125 KV blocks, the replica has 100"
    assert pd.isna(df.loc[1, "rejected"])
    assert res.summary["rejected"] == 1 and res.summary["completed"] == 1
    check_invariants(res)
    sim.replicas["p-0"].kv.check()


# ----------------------------------------------------------------------------- 5. prefix cache


def prefix_trace(tmp_path: Path, n: int = 5) -> tuple[Path, int]:
    p = perf()
    alone = service_time(p, 1124, 10)
    gap = 2 * alone  # each arrives after the previous one finished
    rows = [
        {
            "arrival_s": i * gap,
            "input_tokens": 1124,
            "output_tokens": 10,
            "prefix_blocks": list(range(100, 164)),
            "block_tokens": 16,
        }
        for i in range(n)
    ]
    return write_trace(tmp_path / "prefix.csv", rows), n


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
def test_prefix_cache_hits_repeated_prefix(tmp_path, fast):
    p = perf()
    path, n = prefix_trace(tmp_path)
    sim, res = run_sim(make_scenario(trace_workload(path)), fast)
    df = res.requests.sort_values("id").reset_index(drop=True)
    assert df["cached_tokens"].tolist() == [0] + [1024] * (n - 1)
    assert (df["queue_s"] == 0).all()  # nothing overlaps
    assert (df["ttft_s"][1:] < df["ttft_s"][0]).all()
    assert df["ttft_s"][0] == pytest.approx(prefill(p, 1124), rel=1e-9)
    np.testing.assert_allclose(df["ttft_s"][1:], prefill(p, 100, 1024), rtol=1e-9)
    rate = df["cached_tokens"].sum() / df["input_tokens"].sum()
    assert res.summary["prefix_hit_rate"] == pytest.approx(rate, rel=1e-12)
    assert rate == pytest.approx((n - 1) * 1024 / (n * 1124))
    kv = sim.replicas["p-0"].kv
    kv.check()
    assert kv.evictable_blocks == 64 and kv.used == 0  # the prefix stays cached


def test_prefix_cache_off_never_hits(tmp_path):
    p = perf()
    path, _ = prefix_trace(tmp_path)
    res = simulate(make_scenario(trace_workload(path), {"enable_prefix_caching": False}))
    df = res.requests
    assert (df["cached_tokens"] == 0).all()
    assert res.summary["prefix_hit_rate"] == 0.0
    np.testing.assert_allclose(df["ttft_s"], prefill(p, 1124), rtol=1e-9)


def test_prefix_needs_one_token_left_to_compute(tmp_path):
    """A prompt that is all cached prefix still recomputes its last block (vLLM)."""
    rows = [
        {
            "arrival_s": 5.0 * i,
            "input_tokens": 1024,
            "output_tokens": 5,
            "prefix_blocks": list(range(64)),
            "block_tokens": 16,
        }
        for i in range(2)
    ]
    path = write_trace(tmp_path / "full.csv", rows)
    res = simulate(make_scenario(trace_workload(path)))
    assert res.requests.sort_values("id")["cached_tokens"].tolist() == [0, 1008]


def test_eviction_keeps_the_head_of_a_cached_prefix(tmp_path):
    """vLLM frees a finished request's blocks in reverse order, so eviction takes a cached
    prompt's tail first and its head (what later prompts share) survives. Evicting the
    first block instead makes the whole prefix unreachable while the rest stays cached."""
    blocks = 100
    shared = list(range(65))  # 1040 tokens
    rows = [
        {"arrival_s": 0.0, "input_tokens": 1040, "output_tokens": 2, "prefix_blocks": shared},
        # 35 new blocks fill the free ones; its decode steps evict two cached blocks.
        {
            "arrival_s": 1.0,
            "input_tokens": 560,
            "output_tokens": 20,
            "prefix_blocks": list(range(500, 535)),
        },
        {"arrival_s": 2.0, "input_tokens": 1040, "output_tokens": 2, "prefix_blocks": shared},
    ]
    for r in rows:
        r["block_tokens"] = 16
    path = write_trace(tmp_path / "evict.csv", rows)
    s = make_scenario(
        trace_workload(path), {"gpu_memory_utilization": utilization_for_blocks(blocks)}
    )
    sim, res = run_sim(s)
    df = res.requests.sort_values("id").reset_index(drop=True)
    assert (df["queue_s"] == 0).all() and (df["preemptions"] == 0).all()
    sim.replicas["p-0"].kv.check()
    # Two of the first prompt's 65 cached blocks were evicted: the other 63 still hit.
    assert df.loc[2, "cached_tokens"] >= 62 * 16, df["cached_tokens"].tolist()


# ----------------------------------------------------------------------------- 6. fast = reference


def random_scenario(i: int) -> Scenario:
    rng = np.random.default_rng(1000 + i)
    presets = ["chat", "code", "multiturn", "agentic", None]
    classes = []
    for _ in range(int(rng.integers(1, 3))):
        preset = presets[int(rng.integers(len(presets)))]
        if preset is None:
            classes.append(
                {
                    "input": {
                        "dist": "lognormal",
                        "mean": float(rng.uniform(100, 1500)),
                        "cv": 1.0,
                    },
                    "output": {"dist": "exponential", "mean": float(rng.uniform(20, 300))},
                    "prefix": {"tokens": 256, "variants": 3},
                }
            )
        else:
            output = {"dist": "lognormal", "mean": float(rng.uniform(30, 300)), "cv": 1.0}
            classes.append({"preset": preset, "output": output})
    mnbt = int(rng.choice([512, 2048, 8192]))
    engine: dict[str, Any] = {
        "max_num_seqs": int(rng.integers(2, 65)),
        "max_num_batched_tokens": mnbt,
        "max_model_len": 12_000,
        "enable_prefix_caching": bool(rng.random() < 0.8),
    }
    if rng.random() < 0.5:  # small KV: preemptions and evictions
        engine["gpu_memory_utilization"] = utilization_for_blocks(
            int(rng.integers(800, 2000)), mnbt
        )
    if rng.random() < 0.25:
        engine["scheduling"] = "priority"
    replicas = int(rng.integers(1, 4))
    rate = float(rng.uniform(0.5, 8.0)) * replicas
    router = "least_requests" if rng.random() < 0.5 else "round_robin"
    return make_scenario(
        synthetic(classes, int(rng.integers(30, 80)), rate),
        engine,
        replicas,
        router,
        seed=int(rng.integers(1000)),
        name=f"random-{i}",
    )


# Thirteen random scenarios, and two (180, 209) that a wider sweep of this generator
# found to differ between the modes.
FAST_CASES = [*range(13), 180, 209]


@pytest.mark.parametrize("i", FAST_CASES)
def test_fast_mode_equals_reference(i):
    s = random_scenario(i)
    fast_sim, fast = run_sim(s, fast=True)
    ref_sim, ref = run_sim(s, fast=False)
    for sim in (fast_sim, ref_sim):
        for r in sim.replicas.values():
            r.kv.check()
            assert r.kv.used == 0
    check_invariants(fast)
    check_invariants(ref)
    assert ref.summary["engine_events"] == ref.summary["engine_steps"]
    assert fast.summary["engine_events"] <= fast.summary["engine_steps"]
    a = fast.requests.sort_values("id").reset_index(drop=True)
    b = ref.requests.sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, rtol=1e-9)
    for key in ("requests_in", "completed", "rejected", "preemptions", "engine_steps"):
        assert fast.summary[key] == ref.summary[key], key
    assert fast.summary["energy_kwh"] == pytest.approx(ref.summary["energy_kwh"], rel=1e-9)
    assert fast.summary["duration_s"] == pytest.approx(ref.summary["duration_s"], rel=1e-9)


def test_fast_mode_equals_reference_after_preempting_a_cached_prompt(tmp_path):
    """A request preempted soon after its prefill leaves its prompt blocks cached; at the
    head of the queue it pins them and cannot be admitted. Each decode step's new block
    evicts the least recently used cached block, its first one, after which its prefix
    no longer hits and its next chunk fits: the reference admits it then. Fast mode must
    not run the decode batch past that step."""
    blocks, budget = 64, 64
    rows = [
        {
            "arrival_s": 0.0,
            "input_tokens": 320,
            "output_tokens": 600,
            "prefix_blocks": list(range(20)),
            "block_tokens": 16,
        },
        {
            "arrival_s": 0.5,
            "input_tokens": 608,
            "output_tokens": 50,
            "prefix_blocks": list(range(1000, 1038)),
            "block_tokens": 16,
        },
    ]
    path = write_trace(tmp_path / "preempt.csv", rows)
    engine = {
        "gpu_memory_utilization": utilization_for_blocks(blocks, budget),
        "max_num_batched_tokens": budget,
        "max_num_seqs": budget,
    }
    s = make_scenario(trace_workload(path), engine)
    fast, ref = simulate(s, fast=True), simulate(s, fast=False)
    assert ref.summary["preemptions"] > 0
    pd.testing.assert_frame_equal(
        fast.requests.sort_values("id").reset_index(drop=True),
        ref.requests.sort_values("id").reset_index(drop=True),
        rtol=1e-9,
    )


def test_fast_mode_saves_events():
    """Fast mode must actually take fewer events than steps on a decode-heavy run."""
    s = make_scenario(synthetic([{"input": 300, "output": 500}], 40, 2.0), {"max_num_seqs": 16})
    fast, ref = simulate(s, fast=True), simulate(s, fast=False)
    assert fast.summary["engine_steps"] == ref.summary["engine_steps"]
    assert fast.summary["engine_events"] * 5 < fast.summary["engine_steps"]
    pd.testing.assert_frame_equal(
        fast.requests.sort_values("id").reset_index(drop=True),
        ref.requests.sort_values("id").reset_index(drop=True),
        rtol=1e-9,
    )


def stepped(sim: Simulation, every: int = 1) -> int:
    """Run a simulation event by event; every ``every`` events check that each replica's
    implicit decodes agree with its sequences and KV blocks, and that the fleet view
    kept incrementally equals one built afresh from every replica."""
    sim.start()
    env, n = sim.env, 0
    while env.peek() != float("inf"):
        env.step()
        n += 1
        if n % every:
            continue
        for r in sim.replicas.values():
            r.check()
        kept = sim.view()
        fresh = tuple(
            tuple(r.view() for r in p.replicas if r.state != "retired") for p in sim.pools.values()
        )
        assert tuple(p.replicas for p in kept.pools) == fresh
    sim.recorder.close(env.now, sim)
    return n


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
@pytest.mark.parametrize("i", [0, 3, 180, 209])
def test_implicit_decodes_and_fleet_view_stay_exact_at_every_event(i, fast):
    s = random_scenario(i)
    sim = Simulation(s, fast=fast)
    events = stepped(sim)
    assert events > 100
    _, whole = run_sim(s, fast=fast)  # stepping by hand changes nothing
    pd.testing.assert_frame_equal(
        SimResult.of(sim).requests.sort_values("id").reset_index(drop=True),
        whole.requests.sort_values("id").reset_index(drop=True),
    )


# ----------------------------------------------------------------------------- 7. sessions


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
def test_session_turns_wait_for_the_previous_answer(fast):
    s = make_scenario(synthetic([{"preset": "multiturn"}], 150, 0.5), replicas=1, seed=11)
    reqs = {r.id: r for r in s.requests()}
    res = simulate(s, fast=fast)
    check_invariants(res)
    df = res.requests.set_index("id")
    assert len(df) == len(reqs)
    followers = [r for r in reqs.values() if r.follows is not None]
    assert len(followers) > 20
    for r in followers:
        parent = df.loc[r.follows]
        assert reqs[r.follows].session_id == r.session_id
        assert reqs[r.follows].turn == r.turn - 1
        done = parent["released_s"] + (0.0 if math.isnan(parent["e2e_s"]) else parent["e2e_s"])
        released = df.loc[r.id, "released_s"]
        assert released >= done + r.think_s - 1e-9
        assert released == pytest.approx(done + r.think_s, rel=1e-12, abs=1e-9)
        assert released >= r.arrival_s - 1e-9
        # The conversation so far (the previous prompt's full blocks) is in the cache.
        prev = reqs[r.follows].input_tokens
        assert df.loc[r.id, "cached_tokens"] >= (prev // 16) * 16, r.id


def _two_class_trace(tmp_path, n: int = 12) -> Path:
    """n requests at t=0 on one replica that holds one at a time: half batch, half interactive,
    the batch ones first in the file."""
    path = tmp_path / "classes.csv"
    rows = ["arrival_s,input_tokens,output_tokens,slo_class"]
    rows += [f"0,200,20,{'batch' if i < n // 2 else 'interactive'}" for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("scheduling", ["fcfs", "priority"])
def test_priority_scheduling_serves_interactive_first(tmp_path, scheduling):
    trace = _two_class_trace(tmp_path)
    s = validate(
        Scenario,
        {
            "name": "prio",
            "workload": {"kind": "trace", "path": str(trace)},
            "pools": [
                {
                    "name": "p",
                    "model": "Llama-3.1-8B",
                    "gpu": "H100-SXM",
                    "engine": {"max_num_seqs": 1, "scheduling": scheduling},
                }
            ],
        },
    )
    df = simulate(s).requests
    mean = df.groupby("slo_class")["queue_s"].mean()
    if scheduling == "priority":
        assert mean["interactive"] < mean["batch"]
    else:
        assert mean["interactive"] > mean["batch"]  # first come, first served


def test_chunked_prefill_splits_a_long_prompt_and_unchunked_rejects_what_cannot_fit(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,input_tokens,output_tokens\n0,3000,5\n")
    base = {
        "name": "chunk",
        "workload": {"kind": "trace", "path": str(path)},
    }
    ttft = {}
    for chunked in (True, False):
        pool = {
            "name": "p",
            "model": "Llama-3.1-8B",
            "gpu": "H100-SXM",
            "engine": {
                "max_num_batched_tokens": 4096 if not chunked else 1024,
                "enable_chunked_prefill": chunked,
            },
        }
        df = simulate(validate(Scenario, {**base, "pools": [pool]})).requests
        ttft[chunked] = float(df["ttft_s"].iloc[0])
    assert ttft[False] < ttft[True]  # one 3000-token step beats three chunks with overheads
    pool["engine"]["max_num_batched_tokens"] = 2048  # unchunked, the prompt never fits a step
    df = simulate(validate(Scenario, {**base, "pools": [pool]})).requests
    assert "max_num_batched_tokens" in df["rejected"].iloc[0]


def test_a_later_turn_reuses_the_previous_answer_from_the_prefix_cache():
    """vLLM caches generated blocks too: turn k+1 hits the blocks of turn k's answer."""
    s = validate(
        Scenario,
        {
            "name": "turns",
            "workload": {
                "arrival": {"process": "poisson", "rate": 0.01},
                "classes": [
                    {
                        "input": 160,
                        "output": 48,
                        "session": {"turns": 3, "think_s": 1.0, "new_input": 32},
                    }
                ],
                "duration_s": None,
                "num_requests": 3,
            },
            "pools": [{"name": "p", "model": "Llama-3.1-8B", "gpu": "H100-SXM"}],
        },
    )
    df = simulate(s).requests.sort_values("id")
    assert df["input_tokens"].tolist() == [160, 240, 320]
    # turn 0 computes 160 + 48 - 1 tokens: 12 full blocks (prompt 10, answer 2)
    assert df["cached_tokens"].tolist() == [0, 12 * 16, 17 * 16]
