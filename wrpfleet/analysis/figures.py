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
