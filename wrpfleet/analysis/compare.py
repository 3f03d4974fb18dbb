"""Compare routing and autoscaling policies under load, with common random numbers.

Every policy sees the same arrivals at a given load and seed (the scenario's
workload, seeded, with its arrival times compressed to the load), so differences
between policies are the policies'. Load is offered as a fraction of the fleet's
simulated capacity: the completion rate of the fleet when a large batch of the
workload's requests arrives at once, measured between the 10th and the 90th
percentile completion, away from the start-up and drain transients, on the fleet
as specified (its initial replicas, whatever the autoscaler later does).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats

from wrpfleet.config import AutoscalerSpec, RouterSpec, Scenario
from wrpfleet.errors import InputError
from wrpfleet.sim import simulate

HEADLINE = (
    "ttft_p50_s",
    "ttft_p99_s",
    "tpot_p50_s",
    "tpot_p99_s",
    "e2e_p99_s",
    "slo_attainment",
    "goodput_req_s",
    "gpu_hours",
    "cost_usd",
    "j_per_output_token",
)
"""Figures each policy is tested on against the first (paired over seeds)."""

NO_AUTOSCALER = "none"


@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    router: str
    autoscaler: str
    load: float
    seed: int


def parse_loads(text: str) -> list[float]:
    """``0.5,0.8`` or ``start:stop:step`` (stop included when the steps reach it)."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            n = math.floor((stop - start) / step + 1e-9) + 1
            loads = [round(start + i * step, 10) for i in range(n)]
        else:
            loads = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(
            f"--loads takes a list (0.5,0.8) or a range (start:stop:step), got {text!r}",
            field="--loads",
        ) from None
    if not loads or any(x <= 0 for x in loads):
        raise InputError(f"loads must be > 0, got {text!r}", field="--loads")
    return loads


def with_policies(s: Scenario, router: str, autoscaler: str) -> Scenario:
    """The scenario under another router or autoscaler: the scenario's own parameters
    when it names the same policy, the defaults otherwise."""
    r = s.router if router == s.router.policy else RouterSpec(policy=router)
    a = s.autoscaler
    if autoscaler == NO_AUTOSCALER:
        a = None
    elif a is None or autoscaler != a.policy:
        interval = a.interval_s if a is not None else 10.0
        a = AutoscalerSpec(policy=autoscaler, interval_s=interval)
    update = {
        "router": r,
        "autoscaler": a,
        "outputs": s.outputs.model_copy(update={"timeline": False, "report": False}),
    }
    return s.model_copy(update=update)


def offered_rate(s: Scenario, limit: int = 100_000) -> float:
    """Requests/s the scenario's workload offers (over its first ``limit`` requests)."""
    if getattr(getattr(s.workload, "arrival", None), "process", None) == "closed":
        raise InputError(
            "a closed loop sets its own rate (each user waits for its answer): compare "
            "offers load to open workloads (Poisson, bursty, diurnal, traces)",
            field="workload",
        )
    times = [r.arrival_s for _, r in zip(range(limit), s.requests(), strict=False)]
    if len(times) < 2 or times[-1] <= times[0]:
        raise InputError(
            "the workload must issue requests over time to be offered at a load "
            "(a closed loop or a single instant cannot be)",
            field="workload",
        )
    return (len(times) - 1) / (times[-1] - times[0])


def capacity(s: Scenario, requests: int = 2000, rate: float | None = None) -> float:
    """Requests/s the fleet completes when saturated (least outstanding requests
    routing, no autoscaler: the fleet as specified). ``rate``: the workload's offered
    rate, if the caller has it already."""
    rate = offered_rate(s) if rate is None else rate
    burst = s.model_copy(
        update={
            "rate_scale": s.rate_scale * rate * 1e4,
            "duration_s": None,
            "max_requests": requests,
            "router": RouterSpec(policy="least_requests"),
            "autoscaler": None,
        }
    )
    done = simulate(burst).requests.dropna(subset=["e2e_s"])
    end = np.sort((done["released_s"] + done["e2e_s"]).to_numpy())
    if len(end) < 20:
        raise InputError("too few requests complete to measure the fleet's capacity")
    lo, hi = len(end) // 10, 9 * len(end) // 10
    return (hi - lo) / (end[hi] - end[lo])


def run_cell(base: Scenario, cell: Cell, scale: float) -> dict[str, float]:
    """One run's numeric summary: the grid's unit of work (picklable for Ray)."""
    s = with_policies(base, cell.router, cell.autoscaler)
    s = s.model_copy(update={"seed": cell.seed, "rate_scale": scale})
    summary = simulate(s).summary
    return {
        k: float(v)
        for k, v in summary.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and v is not None
    }


def interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds (the interval is the mean alone for one)."""
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean, mean
    half = float(
        scipy.stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    )
    return mean, mean - half, mean + half


def paired_p(a: np.ndarray, b: np.ndarray) -> float | None:
    """Two-sided paired t-test over seeds (None when it cannot be computed)."""
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    if len(a) < 2:
        return None
    d = a - b
    if np.allclose(d, 0.0):
        return 1.0
    if np.allclose(d, d[0]):  # a constant non-zero difference: as significant as it gets
        return 0.0
    return float(scipy.stats.ttest_rel(a, b).pvalue)


def compare(
    base: Scenario,
    routers: list[str],
    autoscalers: list[str],
    loads: list[float],
    seeds: int,
    map_runs: Callable[[Callable[[Cell], dict], list[Cell]], Iterable[dict]] | None = None,
    on_run: Callable[[int, int], None] | None = None,
) -> tuple[list[dict[str, Any]], float]:
    """Records, one per (router, autoscaler, load): each summary figure's mean and 95%
    interval over seeds, and for the headline figures the paired test against the
    first policy; and the fleet capacity the loads are fractions of."""
    rate = offered_rate(base)
    cap = capacity(base, rate=rate)
    cells = [
        Cell(r, a, load, seed)
        for load in loads
        for seed in range(seeds)
        for a in autoscalers
        for r in routers
    ]

    def one(cell: Cell) -> dict:
        return run_cell(base, cell, base.rate_scale * cell.load * cap / rate)

    runs = map_runs(one, cells) if map_runs else map(one, cells)
    results: dict[Cell, dict] = {}
    for i, (cell, summary) in enumerate(zip(cells, runs, strict=True)):
        results[cell] = summary
        if on_run:
            on_run(i + 1, len(cells))
    keys = sorted({k for s in results.values() for k in s})
    records = []
    for load in loads:
        for a in autoscalers:
            first = routers[0]
            for r in routers:
                per_seed = [results[Cell(r, a, load, k)] for k in range(seeds)]
                rec: dict[str, Any] = {
                    "router": r,
                    "autoscaler": a,
                    "load": load,
                    "offered_req_s": load * cap,
                    "seeds": seeds,
                }
                for key in keys:
                    values = np.array([s.get(key, math.nan) for s in per_seed], dtype=float)
                    mean, lo, hi = interval(values)
                    rec[key] = mean
                    rec[f"{key}_ci"] = [lo, hi]
                    if key in HEADLINE and r != first:
                        ref = np.array(
                            [
                                results[Cell(first, a, load, k)].get(key, math.nan)
                                for k in range(seeds)
                            ],
                            dtype=float,
                        )
                        rec[f"{key}_p_vs_{first}"] = paired_p(values, ref)
                records.append(rec)
    return records, cap


def write(records: list[dict[str, Any]], out: Path, capacity_req_s: float) -> list[Path]:
    """compare.csv, compare.json and compare.html (latency, SLO and energy against load)."""
    import json

    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    flat = [
        {k: (json.dumps(v) if isinstance(v, list) else v) for k, v in rec.items()}
        for rec in records
    ]
    csv = out / "compare.csv"
    pd.DataFrame(flat).to_csv(csv, index=False)
    js = out / "compare.json"
    js.write_text(json.dumps({"capacity_req_s": capacity_req_s, "records": records}, indent=2))
    from wrpfleet.analysis.figures import compare_figure, write_html

    html = write_html(compare_figure(records, capacity_req_s), out / "compare.html")
    return [csv, js, html]
