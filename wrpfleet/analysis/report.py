"""The HTML report of a simulation run: what a capacity planner looks at first."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

if TYPE_CHECKING:
    from wrpfleet.sim.run import SimResult

GRID = 400  # time points for fleet-level curves


def run_report(result: SimResult) -> go.Figure:
    """Latency CDFs, TTFT over time, load and KV per pool, power and energy over time."""
    s, df, tl = result.summary, result.requests, result.timeline
    done = df[df["rejected"].isna()] if len(df) else df
    fig = make_subplots(
        rows=3,
        cols=2,
        subplot_titles=(
            "Latency CDF",
            "TTFT over time",
            "Running + waiting requests per pool",
            "KV cache usage per pool",
            "Fleet power",
            "Cumulative energy",
        ),
        vertical_spacing=0.1,
    )
    for metric in ("ttft_s", "tpot_s", "e2e_s"):
        x = np.sort(done[metric].dropna().to_numpy())
        if len(x):
            y = np.arange(1, len(x) + 1) / len(x)
            step = max(1, len(x) // 2000)
            fig.add_trace(
                go.Scatter(x=x[::step], y=y[::step], name=metric[:-2].upper(), mode="lines"),
                row=1,
                col=1,
            )
    if len(done):
        sample = done.sample(min(len(done), 5000), random_state=0).sort_values("released_s")
        fig.add_trace(
            go.Scattergl(
                x=sample["released_s"],
                y=sample["ttft_s"],
                mode="markers",
                marker={"size": 3, "opacity": 0.5},
                name="TTFT",
                showlegend=False,
            ),
            row=1,
            col=2,
        )
    if len(tl):
        grid = np.linspace(0, max(s["duration_s"], 1e-9), GRID)
        power = np.zeros(GRID)
        energy = np.zeros(GRID)
        for pool, rows in tl.groupby("pool"):
            load = np.zeros(GRID)
            kv = np.zeros(GRID)
            replicas = rows["replica"].unique()
            for _, r in rows.groupby("replica"):
                load += _step(r, "running", grid) + _step(r, "waiting", grid)
                kv += _step(r, "kv_usage", grid)
                power += _step(r, "power_w", grid)
                energy += np.interp(grid, r["t_s"], r["energy_j"])
            fig.add_trace(go.Scatter(x=grid, y=load, name=f"{pool} requests"), row=2, col=1)
            fig.add_trace(go.Scatter(x=grid, y=kv / len(replicas), name=f"{pool} KV"), row=2, col=2)
        fig.add_trace(go.Scatter(x=grid, y=power / 1e3, name="power (kW)"), row=3, col=1)
        fig.add_trace(go.Scatter(x=grid, y=energy / 3.6e6, name="energy (kWh)"), row=3, col=2)
    fig.update_xaxes(title_text="seconds", type="log", row=1, col=1)
    for row, col in ((1, 2), (2, 1), (2, 2), (3, 1), (3, 2)):
        fig.update_xaxes(title_text="simulated time (s)", row=row, col=col)
    fig.update_yaxes(title_text="fraction of requests", row=1, col=1)
    fig.update_yaxes(title_text="TTFT (s)", row=1, col=2)
    fig.update_yaxes(title_text="kW", row=3, col=1)
    fig.update_yaxes(title_text="kWh", row=3, col=2)
    slo = s["slo_attainment"]
    title = (
        f"{s['scenario']}: {s['completed']:,} of {s['requests_in']:,} requests, "
        f"TTFT p99 {_fmt(s['ttft_p99_s'])} s, TPOT p99 {_fmt(s['tpot_p99_s'], 1e3)} ms, "
        f"SLO {'-' if slo is None else f'{slo:.1%}'}, {s['gpu_hours']:.2f} GPU-h, "
        f"${s['cost_usd']:.2f}, {s['energy_kwh']:.2f} kWh"
    )
    fig.update_layout(title=title, height=1100, template="plotly_white")
    return fig


def _step(rows: pd.DataFrame, column: str, grid: np.ndarray) -> np.ndarray:
    """A sampled step function (the value of the last row at or before each time)."""
    t = rows["t_s"].to_numpy()
    i = np.searchsorted(t, grid, side="right") - 1
    values = rows[column].to_numpy(dtype=float)
    return np.where(i >= 0, values[np.clip(i, 0, None)], 0.0)


def _fmt(x: float | None, scale: float = 1.0) -> str:
    return "-" if x is None else f"{x * scale:.3g}"
