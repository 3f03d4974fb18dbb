"""Disaggregated prefill/decode: both ends chosen, KV moved over the link, by hand."""

from __future__ import annotations

import pytest

from wrpfleet.config import Scenario
from wrpfleet.pool.perf import Batch
from wrpfleet.schema import validate
from wrpfleet.sim.fleet import Simulation
from wrpfleet.sim.run import SimResult

LINK = {"bandwidth_gb_s": 50.0, "latency_s": 0.001}


def scenario(tmp_path, rows: list[str], prefill: int = 1, decode: int = 1) -> Scenario:
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,input_tokens,output_tokens\n" + "\n".join(rows) + "\n")
    pool = {"model": "Llama-3.1-8B", "gpu": "H100-SXM"}
    return validate(
        Scenario,
        {
            "name": "pd",
            "workload": {"kind": "trace", "path": str(trace)},
            "pools": [
                {**pool, "name": "pre", "role": "prefill", "replicas": prefill},
                {**pool, "name": "dec", "role": "decode", "replicas": decode},
            ],
            "kv_link": LINK,
            "router": "least_requests",
        },
    )


def test_one_request_by_hand(tmp_path):
    sim = Simulation(scenario(tmp_path, ["0,2000,50"]))
    sim.run()
    df = SimResult.of(sim).requests
    pre, dec = sim.pools["pre"].perf, sim.pools["dec"].perf
    ttft = float(
        pre.iteration_time(Batch(prefill_tokens=2000, prefill_seqs=1, prefill_attn=2000 * 2001 / 2))
    )
    transfer = LINK["latency_s"] + pre.kv_bytes * 2000 / (LINK["bandwidth_gb_s"] * 1e9)
    decode = sum(
        float(dec.iteration_time(Batch(decode_seqs=1, decode_ctx=2001 + k))) for k in range(49)
    )
    row = df.iloc[0]
    assert row["ttft_s"] == pytest.approx(ttft, rel=1e-9)
    assert row["e2e_s"] == pytest.approx(ttft + transfer + decode, rel=1e-9)
    assert (row["prefill_replica"], row["pool"]) == ("pre-0", "dec")
    for r in sim.replicas.values():  # every block back, at both ends
        r.kv.check()
        assert r.kv.used == 0


def test_many_requests_conserve_requests_blocks_and_energy(tmp_path):
    rows = [f"{i * 0.005:.3f},{2000 + 37 * (i % 11)},{20 + i % 7}" for i in range(300)]
    sim = Simulation(scenario(tmp_path, rows, prefill=2, decode=3))
    sim.run()
    result = SimResult.of(sim)
    s, df, reps = result.summary, result.requests, result.replicas
    assert s["completed"] == s["requests_in"] == 300
    assert set(df["pool"]) == {"dec"} and set(df["prefill_replica"]) == {"pre-0", "pre-1"}
    assert (df["e2e_s"] >= df["ttft_s"]).all()
    total = s["energy_kwh"] * 3.6e6
    assert df["energy_j"].sum() + reps["idle_energy_j"].sum() == pytest.approx(total, rel=1e-9)
    for r in sim.replicas.values():
        r.kv.check()
        assert r.kv.used == 0


def test_one_token_answers_never_leave_the_prefill_replica(tmp_path):
    df = SimResult.of(_run(scenario(tmp_path, ["0,300,1", "0.5,300,1"]))).requests
    assert set(df["replica"]) == {"pre-0"}


def _run(s: Scenario) -> Simulation:
    sim = Simulation(s)
    sim.run()
    return sim


def test_fast_mode_equals_reference_with_disaggregation(tmp_path):
    import pandas as pd

    from wrpfleet.sim import simulate

    rows = [f"{i * 0.01:.2f},{800 + 91 * (i % 13)},{30 + 17 * (i % 5)}" for i in range(200)]
    s = scenario(tmp_path, rows, prefill=1, decode=2)
    fast = simulate(s, fast=True).requests.sort_values("id").reset_index(drop=True)
    ref = simulate(s, fast=False).requests.sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(fast, ref, rtol=1e-9)


def test_implicit_decodes_and_fleet_view_stay_exact_with_disaggregation(tmp_path):
    from test_engine import stepped

    rows = [f"{i * 0.01:.2f},{800 + 91 * (i % 13)},{30 + 17 * (i % 5)}" for i in range(120)]
    sim = Simulation(scenario(tmp_path, rows, prefill=1, decode=2))
    assert stepped(sim) > 200
    assert SimResult.of(sim).summary["completed"] == 120
