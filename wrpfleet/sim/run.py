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
    summary: dict[str, Any]
    requests: pd.DataFrame
    replicas: pd.DataFrame

    def write(self, out_dir: Path) -> dict[str, Path]:
        """requests.parquet, replicas.parquet and summary.json under ``out_dir``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            "requests": out_dir / "requests.parquet",
            "replicas": out_dir / "replicas.parquet",
            "summary": out_dir / "summary.json",
        }
        self.requests.to_parquet(paths["requests"], index=False)
        self.replicas.to_parquet(paths["replicas"], index=False)
        paths["summary"].write_text(json.dumps(self.summary, indent=2) + "\n")
        return paths


def simulate(
    scenario: Scenario,
    *,
    fast: bool = True,
    on_progress: Callable[[float, int], None] | None = None,
) -> SimResult:
    """Simulate a scenario to completion. ``fast=False`` is the step-by-step reference."""
    recorder = Simulation(scenario, fast=fast).run(on_progress)
    return SimResult(recorder.summary(), recorder.requests(), recorder.replicas())
