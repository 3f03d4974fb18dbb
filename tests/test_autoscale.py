"""Autoscaling: the pure policy on hand-built views, and the simulator carrying it out
(cold starts, draining, scale from zero, GPU-hours counted per replica lifetime)."""

from __future__ import annotations

import pytest

from wrpfleet.autoscale import TargetOngoing, build_autoscaler
from wrpfleet.config import Scenario
from wrpfleet.errors import InputError
from wrpfleet.pool.catalog import gpu, model
from wrpfleet.pool.perf import PerfModel
from wrpfleet.schema import validate
from wrpfleet.sim import simulate
from wrpfleet.sim.fleet import cold_start_s
from wrpfleet.types import PoolMetrics, PoolView, ReplicaView

METRICS = PoolMetrics(arrivals_per_s=1.0, interval_s=10.0)


def pool_view(outstanding: list[int], target: int, lo: int = 1, hi: int = 8) -> PoolView:
    replicas = tuple(
        ReplicaView(f"p-{i}", "p", "ready", n, 0, 0, 0, 100) for i, n in enumerate(outstanding)
    )
    return PoolView("p", "mixed", "m", "g", replicas, 1.0, lo, hi, target)


def test_target_ongoing_waits_its_delays_and_respects_bounds():
    policy = TargetOngoing(target=10, upscale_delay_s=30, downscale_delay_s=120)
    busy = pool_view([25, 25], target=2)  # 50 ongoing: 5 replicas wanted
    assert policy.decide(busy, METRICS, 0).target == 2
    assert policy.decide(busy, METRICS, 20).target == 2
    up = policy.decide(busy, METRICS, 30)
    assert up.target == 5 and "2 -> 5" in up.reason
    quiet = pool_view([1, 0, 0, 0, 0], target=5)
    assert policy.decide(quiet, METRICS, 40).target == 5
    assert policy.decide(quiet, METRICS, 160).target == 1  # clamped at min_replicas
    flood = pool_view([500], target=1)
    policy.decide(flood, METRICS, 200)
    assert policy.decide(flood, METRICS, 230).target == 8  # clamped at max_replicas


def test_unknown_autoscaler_and_bad_parameters():
    with pytest.raises(InputError, match="available: target_ongoing"):
        build_autoscaler("nope")
    with pytest.raises(InputError, match="bad parameters"):
        build_autoscaler("target_ongoing", {"targett": 3})


def scenario(replicas: int, lo: int, hi: int, points: list) -> Scenario:
    return validate(
        Scenario,
        {
            "name": "scale",
            "workload": {
                "arrival": {"process": "piecewise", "points": points},
                "classes": [{"input": 500, "output": 200}],
                "duration_s": 600,
                "seed": 3,
            },
            "pools": [
                {
                    "name": "p",
                    "model": "Llama-3.1-8B",
                    "gpu": "H100-SXM",
                    "replicas": replicas,
                    "min_replicas": lo,
                    "max_replicas": hi,
                    "cold_start_s": 20,
                    "engine": {"max_num_seqs": 16},
                }
            ],
            "router": "least_requests",
            "autoscaler": {
                "policy": "target_ongoing",
                "interval_s": 5,
                "params": {"target": 8, "upscale_delay_s": 10, "downscale_delay_s": 60},
            },
        },
    )


def test_scales_up_under_load_and_drains_after_it():
    result = simulate(scenario(1, 1, 6, [[0, 20], [200, 1]]))
    s, reps, df = result.summary, result.replicas, result.requests
    assert s["requests_in"] == s["completed"] + s["rejected"] + s["unfinished"]
    assert s["rejected"] == 0 and s["unfinished"] == 0
    assert s["scale_events"] >= 2
    assert len(reps) > 1  # replicas were added
    assert reps["retired_s"].notna().any()  # and drained afterwards
    static = 6 * s["duration_s"] / 3600  # a fleet sized for the peak
    assert s["gpu_hours"] < static
    # A new replica takes no request before its cold start is over.
    first = df.groupby("replica")["released_s"].min()
    for _, r in reps[reps["born_s"] > 0].iterrows():
        if r["replica"] in first:
            assert first[r["replica"]] >= r["born_s"] + 20 - 1e-9
    # The timeline shows each replica's life: started, ready, drained, retired.
    states = set(result.timeline["state"])
    assert {"starting", "ready", "draining", "retired"} <= states
    # Energy still adds up with replicas coming and going.
    total = s["energy_kwh"] * 3.6e6
    assert df["energy_j"].sum() + reps["idle_energy_j"].sum() == pytest.approx(total, rel=1e-9)


def test_scale_from_zero_holds_requests_through_the_cold_start():
    result = simulate(scenario(0, 0, 2, [[0, 0.2]]))
    s, df = result.summary, result.requests
    assert s["completed"] == s["requests_in"] > 0 and s["rejected"] == 0
    assert df["ttft_s"].max() >= 20  # the first request waited for a replica to start


def test_cold_start_from_model_size():
    p = PerfModel(gpu("H100-SXM"), model("Llama-3.1-70B"), 4)
    spec = (
        scenario(1, 1, 1, [[0, 1]])
        .pools[0]
        .model_copy(update={"model": "Llama-3.1-70B", "tp": 4, "cold_start_s": None})
    )
    assert cold_start_s(spec, p) == pytest.approx(30 + p.weight_bytes / (4 * 2e9))


def test_fast_mode_equals_reference_while_scaling():
    import pandas as pd

    s = scenario(1, 1, 6, [[0, 20], [200, 1]])
    fast, ref = simulate(s, fast=True), simulate(s, fast=False)
    a = fast.requests.sort_values("id").reset_index(drop=True)
    b = ref.requests.sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, rtol=1e-9)
    assert fast.summary["gpu_hours"] == pytest.approx(ref.summary["gpu_hours"], rel=1e-9)
