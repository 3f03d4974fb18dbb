"""Run a scenario and write its outputs: the one entry point of the simulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from wrpfleet.config import Scenario
from wrpfleet.sim.fleet import Simulation


@dataclass
class SimResult:
    scenario: Scenario
    summary: dict[str, Any]
    requests: pd.DataFrame
    replicas: pd.DataFrame
    timeline: pd.DataFrame

    @classmethod
    def of(cls, sim: Simulation) -> SimResult:
        """The result of a simulation that has run."""
        r = sim.recorder
        return cls(sim.scenario, r.summary(), r.requests(), r.replicas(), r.timeline(sim))

    def write(self, out_dir: Path) -> dict[str, Path]:
        """summary.json, requests.parquet, replicas.parquet, timeline.parquet and
        report.html under ``out_dir``, as the scenario's ``outputs`` ask."""
        from wrpfleet.analysis.figures import write_html
        from wrpfleet.analysis.report import run_report

        outputs = self.scenario.outputs
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {"summary": out_dir / "summary.json"}
        paths["summary"].write_text(json.dumps(self.summary, indent=2) + "\n")
        self.replicas.to_parquet(out_dir / "replicas.parquet", index=False)
        paths["replicas"] = out_dir / "replicas.parquet"
        if outputs.per_request:
            paths["requests"] = out_dir / "requests.parquet"
            self.requests.to_parquet(paths["requests"], index=False)
        if outputs.timeline:
            paths["timeline"] = out_dir / "timeline.parquet"
            self.timeline.to_parquet(paths["timeline"], index=False)
        if outputs.report:
            paths["report"] = write_html(run_report(self), out_dir / "report.html")
        return paths


def simulate(
    scenario: Scenario,
    *,
    fast: bool = True,
    on_progress: Callable[[float, int], None] | None = None,
) -> SimResult:
    """Simulate a scenario to completion. ``fast=False`` is the step-by-step reference."""
    sim = Simulation(scenario, fast=fast)
    sim.run(on_progress)
    return SimResult.of(sim)
