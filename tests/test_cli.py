"""The `wrpfleet` command end to end, as a user runs it (a subprocess, real exit codes)."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, wrpfleet

CONV = REPO / "workloads/traces/azure2023_conv_first2000.csv.gz"


def test_describe_trace_json():
    run = wrpfleet("workload", "describe", CONV, "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["requests"] == 2_000
    assert out["format"] == "azure2023"
    assert set(out["input_tokens"]) == {"mean", "p50", "p90", "p99", "max"}
    assert out["interarrival_cv"] > 0


def test_describe_scenario_uses_its_seed_and_duration_and_plots(tmp_path):
    plot = tmp_path / "w.html"
    run = wrpfleet("workload", "describe", "sim/quickstart.yaml", "--json", "--plot", plot)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["span_s"] < 600
    assert out["mean_rate_per_s"] == pytest.approx(8.0, rel=0.1)
    html = plot.read_text()
    assert "plotly" in html and "Arrival rate" in html


def test_describe_human_output():
    run = wrpfleet("workload", "describe", "workloads/agentic.yaml")
    assert run.returncode == 0, run.stderr
    for word in ("requests", "inter-arrival CV", "prefix reuse", "sessions"):
        assert word in run.stdout


def test_bad_trace_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,-3,109\n"
    )
    run = wrpfleet("workload", "describe", bad)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"{bad}:3: ContextTokens: must be >= 1, got -3" in lines[0]

    run = wrpfleet("workload", "describe", bad, "--skip-bad-lines", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["requests"] == 1
    assert "skipped 1 bad line(s) (first: line 3" in out["notes"][0]


def test_bad_scenario_and_missing_file_exit_2(tmp_path):
    scenario = tmp_path / "s.yaml"
    text = (REPO / "sim/quickstart.yaml").read_text().replace("seed: 0", "sede: 0")
    scenario.write_text(text.replace("../", f"{REPO}/"))
    run = wrpfleet("check", scenario)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert f"{scenario}:" in run.stderr and "unknown key 'sede'" in run.stderr
    run = wrpfleet("workload", "describe", tmp_path / "nope.csv")
    assert run.returncode == 2 and "file not found" in run.stderr


def test_check_with_overrides():
    run = wrpfleet(
        "check", "sim/quickstart.yaml", "--workload", CONV, "--pools", "pools/hetero.yaml"
    )
    assert run.returncode == 0, run.stderr
    assert "azure2023_conv_first2000 (trace)" in run.stdout
    assert "pool a100" in run.stdout
    run = wrpfleet("check", "sim/quickstart.yaml", "--json", "--seed", "5")
    assert json.loads(run.stdout)["seed"] == 5
    run = wrpfleet("check", "sim/quickstart.yaml", "--json", "--router", "power_of_two")
    assert json.loads(run.stdout)["router"]["policy"] == "power_of_two"


def test_router_naming_pools_the_fleet_lacks_is_an_error():
    run = wrpfleet("check", "sim/context_pools.yaml", "--pools", "pools/h100_llama8b.yaml")
    assert run.returncode == 2
    assert "router context_length names pools the fleet lacks: long, short" in run.stderr
    run = wrpfleet("check", "sim/quickstart.yaml", "--router", "fastest")
    assert run.returncode == 2 and "unknown router 'fastest'" in run.stderr


def test_export_then_describe_round_trip(tmp_path):
    dest = tmp_path / "mixed.parquet"
    run = wrpfleet("workload", "export", "workloads/mixed.yaml", dest)
    assert run.returncode == 0, run.stderr
    a = json.loads(wrpfleet("workload", "describe", "workloads/mixed.yaml", "--json").stdout)
    b = json.loads(wrpfleet("workload", "describe", dest, "--json").stdout)
    keys = ("requests", "span_s", "input_tokens", "output_tokens", "prefix_reuse", "categories")
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}


@pytest.mark.parametrize(
    "args, words",
    [
        ((), ["workload", "check"]),
        (("workload", "describe"), ["--json", "--plot", "--skip-bad-lines", "--format"]),
        (("workload", "export"), ["parquet"]),
        (("check",), ["--workload", "--pools", "--seed"]),
    ],
)
def test_help_explains_every_option(args, words):
    run = wrpfleet(*args, "--help")
    assert run.returncode == 0
    for word in words:
        assert word in run.stdout


def test_simulate_writes_every_output_and_conserves_requests(tmp_path):
    run = wrpfleet("simulate", "sim/quickstart.yaml", "--json", "--out", tmp_path)
    assert run.returncode == 0, run.stderr
    s = json.loads(run.stdout)
    keys = [
        "requests_in",
        "completed",
        "rejected",
        "unfinished",
        "ttft_p50_s",
        "ttft_p99_s",
        "tpot_p50_s",
        "tpot_p99_s",
        "e2e_p99_s",
        "slo_attainment",
        "throughput_tok_s",
        "gpu_hours",
        "cost_usd",
        "energy_kwh",
        "j_per_output_token",
        "prefix_hit_rate",
    ]
    assert set(keys) <= set(s)
    assert s["requests_in"] == s["completed"] + s["rejected"] + s["unfinished"] > 0
    for name in ("summary.json", "requests.parquet", "replicas.parquet", "timeline.parquet"):
        assert (tmp_path / name).stat().st_size > 0
    assert "plotly" in (tmp_path / "report.html").read_text()[:100_000]
    import pandas as pd

    df = pd.read_parquet(tmp_path / "requests.parquet")
    assert len(df) == s["requests_in"]


def test_simulate_any_trace_on_any_fleet(tmp_path):
    run = wrpfleet(
        "simulate",
        "sim/quickstart.yaml",
        "--workload",
        CONV,
        "--pools",
        "pools/hetero.yaml",
        "--json",
        "--out",
        tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["requests_in"] == 2_000
    import pandas as pd

    pools = set(pd.read_parquet(tmp_path / "requests.parquet")["pool"])
    assert pools == {"h100", "a100"}


def test_simulate_unknown_gpu_is_a_clear_error(tmp_path):
    pools = tmp_path / "p.yaml"
    pools.write_text("pools:\n  - {name: x, model: Llama-3.1-8B, gpu: H101}\n")
    run = wrpfleet("simulate", "sim/quickstart.yaml", "--pools", pools)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "H101" in run.stderr and "H100" in run.stderr
