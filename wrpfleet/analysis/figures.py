"""Plotly figures. HTML files embed plotly.js so they open offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from wrpfleet.analysis.describe import WorkloadStats


def workload_figure(stats: WorkloadStats, title: str) -> go.Figure:
    """Arrival rate over time, and the prompt and answer length distributions."""
    t = np.frombuffer(stats.arrivals, dtype=float)
    fig = make_subplots(
        rows=3,
        cols=1,
        subplot_titles=("Arrival rate", "Prompt tokens", "Output tokens"),
        vertical_spacing=0.09,
    )
    if len(t):
        span = max(float(t[-1] - t[0]), 1e-9)
        width = _nice_bin(span / 200)
        edges = np.arange(t[0], t[-1] + width, width)
        counts, edges = np.histogram(t, bins=edges)
        fig.add_trace(
            go.Scatter(
                x=edges[:-1],
                y=counts / width,
                mode="lines",
                line_shape="hv",
                name=f"requests/s ({width:g} s bins)",
            ),
            row=1,
            col=1,
        )
    for row, (values, name) in enumerate(((stats.inputs, "prompt"), (stats.outputs, "output")), 2):
        x = np.frombuffer(values, dtype=np.int64)
        fig.add_trace(go.Histogram(x=x, nbinsx=100, name=f"{name} tokens"), row=row, col=1)
    fig.update_xaxes(title_text="time (s)", row=1, col=1)
    fig.update_yaxes(title_text="requests/s", row=1, col=1)
    fig.update_xaxes(title_text="tokens", row=2, col=1)
    fig.update_xaxes(title_text="tokens", row=3, col=1)
    fig.update_yaxes(title_text="requests", row=2, col=1)
    fig.update_yaxes(title_text="requests", row=3, col=1)
    fig.update_layout(title=title, height=900, showlegend=False, template="plotly_white")
    return fig


def _nice_bin(x: float) -> float:
    """Round a bin width to 1, 2 or 5 times a power of ten."""
    if x <= 0:
        return 1.0
    exp = np.floor(np.log10(x))
    for m in (1, 2, 5, 10):
        if m * 10**exp >= x:
            return float(m * 10**exp)
    return float(10 ** (exp + 1))


def write_html(fig: go.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs=True, full_html=True)
    return path


COMPARE_PANELS = (
    ("ttft_p99_s", "p99 TTFT (s)"),
    ("tpot_p99_s", "p99 TPOT (s)"),
    ("slo_attainment", "SLO attainment"),
    ("j_per_output_token", "J per output token"),
    ("gpu_hours", "GPU-hours"),
    ("cost_usd", "cost (USD)"),
)


def compare_figure(records: list[dict], capacity_req_s: float) -> go.Figure:
    """Latency, SLO attainment, energy and cost against offered load, one line per
    policy, with 95% intervals over seeds as error bars."""
    fig = make_subplots(rows=3, cols=2, subplot_titles=[t for _, t in COMPARE_PANELS])
    policies = list(dict.fromkeys((r["router"], r["autoscaler"]) for r in records))
    palette = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
    for i, (router, scaler) in enumerate(policies):
        rows = sorted(
            (r for r in records if (r["router"], r["autoscaler"]) == (router, scaler)),
            key=lambda r: r["load"],
        )
        name = router if scaler == "none" else f"{router} + {scaler}"
        x = [r["load"] for r in rows]
        for k, (key, _) in enumerate(COMPARE_PANELS):
            y = [r.get(key) for r in rows]
            ci = [r.get(f"{key}_ci", [None, None]) for r in rows]
            plus = [
                hi - m if hi is not None and m is not None else 0
                for m, (_, hi) in zip(y, ci, strict=True)
            ]
            minus = [
                m - lo if lo is not None and m is not None else 0
                for m, (lo, _) in zip(y, ci, strict=True)
            ]
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines+markers",
                    name=name,
                    legendgroup=name,
                    showlegend=k == 0,
                    line={"color": palette[i % len(palette)]},
                    error_y={"type": "data", "array": plus, "arrayminus": minus, "visible": True},
                ),
                row=k // 2 + 1,
                col=k % 2 + 1,
            )
    fig.update_xaxes(title_text=f"offered load (fraction of {capacity_req_s:.1f} req/s)")
    fig.update_layout(
        title="Policies under load (mean and 95% interval over seeds)",
        height=1100,
        template="plotly_white",
    )
    return fig
