"""Runs side by side: ``wrpfleet report RUN_DIR [RUN_DIR ...]``.

Any folder with a ``summary.json`` and a ``requests.parquet`` is a run: ``wrpfleet
simulate`` and ``wrpfleet bench`` write the same table, so a simulated and a live
run of one workload can be set against each other: percentiles, relative
differences (each run against the first, as signed fractions) and overlaid
latency CDFs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from wrpfleet.errors import InputError

FIGURES = tuple(f"{m}_p{p}_s" for m in ("ttft", "tpot", "e2e") for p in (50, 90, 99))


@dataclass
class Run:
    path: Path
    summary: dict[str, Any]
    requests: pd.DataFrame

    @property
    def label(self) -> str:
        kind = "live" if "endpoint" in self.summary else "simulated"
        return f"{self.path.name} ({kind})"


def load_run(path: Path) -> Run:
    summary, table = path / "summary.json", path / "requests.parquet"
    for f in (summary, table):
        if not f.is_file():
            raise InputError(
                "not a run folder: it needs summary.json and requests.parquet (written by "
                "wrpfleet simulate or wrpfleet bench)",
                path=f,
            )
    try:
        data = json.loads(summary.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"summary.json is not JSON: {e}", path=summary) from None
    return Run(path, data, pd.read_parquet(table))


def relative(runs: list[Run]) -> list[dict[str, float | None]]:
    """For each run after the first: (run - first) / first, per figure."""
    base = runs[0].summary
    out = []
    for run in runs[1:]:
        rel: dict[str, float | None] = {}
        for key in FIGURES:
            a, b = base.get(key), run.summary.get(key)
            rel[key.removesuffix("_s") + "_rel"] = (b - a) / a if a and b is not None else None
        out.append(rel)
    return out


def figure(runs: list[Run]) -> go.Figure:
    """Overlaid CDFs of TTFT, TPOT and end-to-end latency, one line per run."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=("TTFT (s)", "TPOT (s)", "end-to-end (s)"))
    for i, run in enumerate(runs):
        for k, col in enumerate(("ttft_s", "tpot_s", "e2e_s")):
            values = np.sort(run.requests[col].dropna().to_numpy()) if col in run.requests else []
            if not len(values):
                continue
            fig.add_trace(
                go.Scatter(
                    x=values,
                    y=np.arange(1, len(values) + 1) / len(values),
                    mode="lines",
                    name=run.label,
                    legendgroup=run.label,
                    showlegend=k == 0,
                    line={"color": ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")[i % 4]},
                ),
                row=1,
                col=k + 1,
            )
    fig.update_yaxes(title_text="fraction of requests", row=1, col=1)
    fig.update_layout(title="Latency CDFs", height=450, template="plotly_white")
    return fig
