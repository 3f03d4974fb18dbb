"""Scenario, workload and pool files: examples load; every error names file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import REPO

from wrpfleet.config import Scenario, Slo, load_scenario
from wrpfleet.errors import InputError
from wrpfleet.pool import FleetSpec
from wrpfleet.schema import load_yaml_spec, validate
from wrpfleet.workload import SyntheticWorkload, TraceWorkload, load_workload

QUICK = """\
name: t
workload:
  arrival: {process: poisson, rate: 2.0}
  duration_s: 30
pools:
  - name: a
    model: Llama-3.1-8B
    gpu: H100-SXM
    replicas: 2
router: least_requests
slo: {ttft_p99_s: 2.0}
"""


def errors(exc: pytest.ExceptionInfo) -> list[str]:
    return str(exc.value).splitlines()


@pytest.mark.parametrize("path", sorted((REPO / "sim").glob("*.yaml")), ids=lambda p: p.name)
def test_example_scenarios_load(path):
    s = load_scenario(path)
    assert s.pools and s.workload
    assert next(iter(s.requests())).arrival_s >= 0


@pytest.mark.parametrize("path", sorted((REPO / "workloads").glob("*.yaml")), ids=lambda p: p.name)
def test_example_workloads_load(path):
    w = load_workload(path)
    assert next(iter(w.requests())).input_tokens >= 1


@pytest.mark.parametrize("path", sorted((REPO / "pools").glob("*.yaml")), ids=lambda p: p.name)
def test_example_pools_load(path):
    assert load_yaml_spec(FleetSpec, path).pools


def test_inline_scenario(write):
    s = load_scenario(write("s.yaml", QUICK))
    assert isinstance(s.workload, SyntheticWorkload)
    assert s.router.policy == "least_requests"
    assert [t.key for t in s.slo.targets] == ["ttft_p99_s"]
    assert s.out_dir == Path("runs/t")


def test_unknown_key_names_line_path_and_suggests(write):
    path = write("s.yaml", QUICK.replace("    replicas: 2", "    replica: 2"))
    with pytest.raises(InputError) as e:
        load_scenario(path)
    (line,) = errors(e)
    assert line.startswith(f"{path}:9: pools[0].replica: unknown key 'replica'")
    assert "did you mean 'replicas'?" in line
    assert "allowed: " in line


def test_bad_value_names_the_value_and_what_is_allowed(write):
    path = write(
        "s.yaml",
        QUICK.replace("    replicas: 2", "    replicas: 2\n    tp: 0\n    role: hybrid"),
    )
    with pytest.raises(InputError) as e:
        load_scenario(path)
    lines = errors(e)
    assert f"{path}:10: pools[0].tp: Input should be greater than 0 (got 0)" in lines
    assert any(
        line.startswith(f"{path}:11: pools[0].role:") and "'mixed', 'prefill' or 'decode'" in line
        for line in lines
    )


def test_error_inside_a_union_member_points_at_the_field(write):
    path = write("s.yaml", QUICK.replace("rate: 2.0", "rate: -2.0"))
    with pytest.raises(InputError) as e:
        load_scenario(path)
    assert errors(e) == [
        f"{path}:3: workload.arrival.rate: Input should be greater than 0 (got -2.0)"
    ]


def test_error_in_a_referenced_file_names_that_file(write):
    wpath = write("w.yaml", "arrival:\n  process: poisson\n  rate: fast\n")
    spath = write(
        "s.yaml",
        QUICK.replace(
            QUICK[QUICK.index("workload:") : QUICK.index("pools:")], "workload: w.yaml\n"
        ),
    )
    with pytest.raises(InputError) as e:
        load_scenario(spath)
    (line,) = errors(e)
    assert line.startswith(f"{wpath}:3: arrival.rate:")
    assert "'fast'" in line


def test_missing_referenced_file_names_the_scenario_line(write):
    spath = write("s.yaml", QUICK.replace("pools:\n", "pools: nowhere.yaml\nx:\n", 1))
    with pytest.raises(InputError) as e:
        load_scenario(spath)
    assert str(e.value).startswith(f"{spath}:5: pools: file not found")


def test_duplicate_keys_are_errors_not_silently_overwritten(write):
    path = write("s.yaml", QUICK + "router: round_robin\n")
    with pytest.raises(InputError, match=r"s.yaml:12: duplicate key 'router'"):
        load_scenario(path)


def test_yaml_syntax_error_has_a_line(write):
    path = write("s.yaml", QUICK.replace("slo: {ttft_p99_s: 2.0}", "slo: {ttft_p99_s: 2.0"))
    with pytest.raises(InputError, match=r"s.yaml:\d+: invalid YAML"):
        load_scenario(path)


def test_missing_required_fields(write):
    path = write("s.yaml", "name: t\npools: []\n")
    with pytest.raises(InputError) as e:
        load_scenario(path)
    lines = errors(e)
    assert f"{path}:1: workload: required, but missing" in lines  # in the mapping at line 1
    assert any(x.startswith(f"{path}:2: pools: List should have at least 1 item") for x in lines)


def test_overrides_replace_workload_pools_and_seed(repo):
    trace = repo / "workloads/traces/azure2023_conv_first2000.csv.gz"
    s = load_scenario(
        repo / "sim/quickstart.yaml",
        workload=trace,
        pools=repo / "pools/disagg.yaml",
        seed=42,
    )
    assert isinstance(s.workload, TraceWorkload) and s.workload.format == "azure2023"
    assert [p.role for p in s.pools] == ["prefill", "decode"]
    assert s.kv_link is not None and s.kv_link.bandwidth_gb_s == 190
    assert s.seed == 42


def test_scenario_duration_cuts_the_workload(write):
    s = load_scenario(write("s.yaml", QUICK + "duration_s: 10\n"))
    reqs = list(s.requests())
    assert reqs and max(r.arrival_s for r in reqs) < 10
    assert list(s.requests()) == reqs


def test_slo_forms():
    a = validate(
        Slo, {"ttft_p99_s": 2, "tpot_p90_s": 0.05, "classes": {"batch": {"ttft_p99_s": 60}}}
    )
    b = validate(Slo, "ttft_p99<=2s, tpot_p90<=50ms")
    assert a.targets == b.targets
    assert [t.threshold_s for t in a.for_class("batch")] == [60, 0.05]
    assert a.for_class("interactive") == a.targets
    with pytest.raises(InputError, match="unknown SLO target 'ttft_99'"):
        validate(Slo, {"ttft_99": 2})
    with pytest.raises(InputError, match="bad SLO target 'ttft<2s'"):
        validate(Slo, "ttft<2s")


@pytest.mark.parametrize(
    "pools, message",
    [
        ([{"name": "a", "model": "Llama-3.1-8B", "gpu": "H100"}] * 2, "unique: a repeated"),
        (
            [{"name": "p", "role": "prefill", "model": "Llama-3.1-8B", "gpu": "H100"}],
            "needs a decode pool",
        ),
        (
            [
                {"name": "p", "role": "prefill", "model": "Llama-3.1-8B", "gpu": "H100"},
                {"name": "d", "role": "decode", "model": "Llama-3.1-8B", "gpu": "H100"},
            ],
            "need a kv_link",
        ),
        (
            [
                {
                    "name": "a",
                    "model": "Llama-3.1-8B",
                    "gpu": "H100",
                    "replicas": 5,
                    "max_replicas": 3,
                }
            ],
            "<= 3",
        ),
        ([{"name": "a b", "model": "Llama-3.1-8B", "gpu": "H100"}], "should match pattern"),
        (
            [
                {
                    "name": "a",
                    "model": "Llama-3.1-8B",
                    "gpu": "H100",
                    "engine": {"max_num_seqs": 512, "max_num_batched_tokens": 256},
                }
            ],
            r"max_num_batched_tokens \(256\) must be at least max_num_seqs \(512\)",
        ),
    ],
)
def test_fleet_consistency(pools, message):
    with pytest.raises(InputError, match=message):
        validate(FleetSpec, {"pools": pools})


def test_scenario_model_rejects_bad_names():
    with pytest.raises(InputError, match="names the run folder"):
        validate(
            Scenario,
            {
                "name": "my run",
                "workload": {"arrival": {"process": "poisson", "rate": 1}},
                "pools": [{"name": "a", "model": "Llama-3.1-8B", "gpu": "H100"}],
            },
        )


def test_workload_kind_defaults_and_errors(write):
    assert (
        load_workload(write("w.yaml", "arrival: {process: poisson, rate: 1}\n")).kind == "synthetic"
    )
    with pytest.raises(InputError, match="kind must be 'synthetic' or 'trace'"):
        load_workload(write("v.yaml", "kind: replay\npath: x.csv\n"))
    path = write(
        "u.yaml",
        textwrap.dedent("""\
        kind: trace
        path: missing.csv
        """),
    )
    with pytest.raises(InputError, match=r"u.yaml:2: path: file not found"):
        load_workload(path)


def test_every_problem_at_once_sorted_by_line(write):
    path = write(
        "w.yaml",
        textwrap.dedent("""\
            kind: synthetic
            arrival: {process: poisson, rat: 3}
            classes:
              - preset: chat
                input: {dist: lognormal, mean: 5, cv: 1, sigma: 2}
                session: {turns: 3, think_s: 1, new_input: 5, foo: 1}
            durration_s: 10
            """),
    )
    with pytest.raises(InputError) as e:
        load_workload(path)
    lines = [line.removeprefix(f"{path}:") for line in errors(e)]
    assert lines == [
        "2: arrival.rate: required, but missing",
        "2: arrival.rat: unknown key 'rat' (did you mean 'rate'?); allowed: process, rate",
        "5: classes[0].input.sigma: unknown key 'sigma'; allowed: cv, dist, max, mean, min",
        "6: classes[0].session.foo: unknown key 'foo'; allowed: new_input, think_s, turns",
        "7: durration_s: unknown key 'durration_s' (did you mean 'duration_s'?); allowed: "
        "arrival, block_tokens, classes, description, duration_s, kind, name, num_requests, seed",
    ]


def test_unknown_router_or_autoscaler_is_located(write):
    path = write("s.yaml", QUICK.replace("router: least_requests", "router: fastest"))
    with pytest.raises(InputError, match=r"s.yaml:10: router: unknown router 'fastest'"):
        load_scenario(path)
    path = write("t.yaml", QUICK + "autoscaler: {policy: target_ongoing, params: {target: -1}}\n")
    with pytest.raises(InputError, match=r"t.yaml:12: autoscaler: target must be > 0"):
        load_scenario(path)
