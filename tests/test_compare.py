"""Comparing policies under load: loads, capacity, common random numbers, statistics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import wrpfleet

from wrpfleet.analysis.compare import (
    capacity,
    compare,
    interval,
    offered_rate,
    paired_p,
    parse_loads,
    with_policies,
)
from wrpfleet.config import Scenario
from wrpfleet.errors import InputError
from wrpfleet.pool.perf import Batch, perf_model
from wrpfleet.schema import validate


def scenario(max_num_seqs: int = 256, replicas: int = 2, n: int = 400) -> Scenario:
    return validate(
        Scenario,
        {
            "name": "cmp",
            "workload": {
                "arrival": {"process": "poisson", "rate": 5.0},
                "classes": [{"input": 100, "output": 50}],
                "duration_s": None,
                "num_requests": n,
                "seed": 1,
            },
            "pools": [
                {
                    "name": "p",
                    "model": "Llama-3.1-8B",
                    "gpu": "H100-SXM",
                    "replicas": replicas,
                    "engine": {"max_num_seqs": max_num_seqs},
                }
            ],
            "router": "least_requests",
        },
    )


def test_loads_as_lists_and_ranges():
    assert parse_loads("0.5,0.8") == [0.5, 0.8]
    grid = parse_loads("0.2:1.2:0.1")
    assert len(grid) == 11 and grid[0] == 0.2 and grid[-1] == pytest.approx(1.2)
    for bad in ("0.5:0.2:0.1", "a,b", "0:1:0", "-1"):
        with pytest.raises(InputError, match=r"--loads|loads must be"):
            parse_loads(bad)


def test_interval_and_paired_test_by_hand():
    mean, lo, hi = interval(np.array([1.0, 2.0, 3.0]))
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t(0.975, 2) x s / sqrt(n)
    assert (mean, lo, hi) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert interval(np.array([5.0])) == (5.0, 5.0, 5.0)
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert paired_p(a, a) == 1.0
    assert paired_p(a + 1, a) == 0.0
    assert 0 < paired_p(a + np.array([0.1, -0.2, 0.3, 0.05]), a) < 1
    assert paired_p(a[:1], a[:1]) is None


def test_capacity_of_batch_one_replicas_is_one_over_the_service_time():
    """With one sequence a replica, a request is served alone: a prefill step and 49
    decode steps; two replicas complete two requests per service time."""
    s = scenario(max_num_seqs=1)
    perf = perf_model("H100-SXM", "Llama-3.1-8B")
    service = float(
        perf.iteration_time(Batch(prefill_tokens=100, prefill_seqs=1, prefill_attn=100 * 101 / 2))
    ) + sum(float(perf.iteration_time(Batch(decode_seqs=1, decode_ctx=101 + k))) for k in range(49))
    assert capacity(s, requests=200) == pytest.approx(2 / service, rel=0.02)


def test_compare_uses_common_random_numbers_and_reports_every_figure():
    s = scenario()
    records, cap = compare(s, ["least_requests", "random"], ["none"], [0.3, 0.6], seeds=2)
    assert len(records) == 4
    for rec in records:
        for key in ("router", "autoscaler", "load", "seeds", "ttft_p99_s", "ttft_p99_s_ci"):
            assert key in rec
        lo, hi = rec["ttft_p99_s_ci"]
        assert lo <= rec["ttft_p99_s"] <= hi
        assert rec["offered_req_s"] == pytest.approx(rec["load"] * cap)
    by = {(r["router"], r["load"]): r for r in records}
    for load in (0.3, 0.6):
        a, b = by[("least_requests", load)], by[("random", load)]
        assert a["requests_in"] == b["requests_in"] == 400  # the same requests
        assert "ttft_p99_s_p_vs_least_requests" in b
    # The offered rate is the load times the capacity.
    scaled = s.model_copy(update={"rate_scale": 0.6 * cap / offered_rate(s)})
    assert offered_rate(scaled) == pytest.approx(0.6 * cap, rel=1e-9)
    # Higher load, longer tails, whatever the router.
    assert by[("random", 0.6)]["ttft_p99_s"] > by[("random", 0.3)]["ttft_p99_s"]


def test_with_policies_keeps_the_scenarios_own_parameters():
    s = validate(
        Scenario,
        {
            **scenario().model_dump(exclude={"router", "autoscaler", "outputs"}),
            "router": {"policy": "scored", "params": {"scorers": {"kv": 1}}},
            "autoscaler": {"policy": "kpa", "interval_s": 7, "params": {"target": 3}},
        },
    )
    same = with_policies(s, "scored", "kpa")
    assert same.router.params == {"scorers": {"kv": 1}} and same.autoscaler.params == {"target": 3}
    other = with_policies(s, "random", "target_ongoing")
    assert other.router.params == {} and other.autoscaler.interval_s == 7
    assert with_policies(s, "random", "none").autoscaler is None


def test_compare_cli_json(tmp_path):
    run = wrpfleet(
        "compare",
        "sim/quickstart.yaml",
        "--routers",
        "least_requests,power_of_two",
        "--loads",
        "0.5",
        "--seeds",
        "1",
        "--out",
        tmp_path,
        "--json",
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    records = json.loads(run.stdout)
    assert [r["router"] for r in records] == ["least_requests", "power_of_two"]
    assert {"ttft_p99_s", "ttft_p99_s_ci", "slo_attainment", "j_per_output_token"} <= set(
        records[0]
    )
    assert {p.name for p in tmp_path.iterdir()} == {"compare.csv", "compare.json", "compare.html"}
    bad = wrpfleet("compare", "sim/quickstart.yaml", "--routers", "x")
    assert bad.returncode == 2 and "unknown router 'x'" in bad.stderr


def test_compare_on_ray_gives_the_in_process_results(tmp_path):
    args = [
        "compare",
        "sim/quickstart.yaml",
        "--routers",
        "least_requests,random",
        "--loads",
        "0.4,0.8",
        "--seeds",
        "2",
        "--json",
    ]
    local = wrpfleet(*args, "--out", tmp_path / "a", timeout=300)
    on_ray = wrpfleet(*args, "--out", tmp_path / "b", "--ray-address", "local", timeout=300)
    assert local.returncode == 0, local.stderr
    assert on_ray.returncode == 0, on_ray.stderr
    assert json.loads(on_ray.stdout) == json.loads(local.stdout)
