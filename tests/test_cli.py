"""The `wrpfleet` command end to end, as a user runs it (a subprocess, real exit codes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

CONV = REPO / "workloads/traces/azure2023_conv_first2000.csv.gz"


def wrpfleet(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wrpfleet.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


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
