"""What a run measured: the per-request table, per-replica timelines and the summary.

Requests in = completed + rejected + unfinished, always. Energy counts every GPU
the fleet holds for the whole run: the steps' active energy (shared out to the
requests in each step by tokens) and idle energy between steps; so the requests'
shares plus idle energy add up to the total. Cost likewise: each step's time at
the replica's price is shared out by tokens, and idle time is the fleet's.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wrpfleet.config import Scenario
from wrpfleet.pool.quality import draw, p_good
from wrpfleet.types import Outcome, Request

if TYPE_CHECKING:
    from wrpfleet.sim.engine import Replica, Seq
    from wrpfleet.sim.fleet import Simulation

PERCENTILES = (50, 90, 99)


def latency_figures(done: pd.DataFrame) -> dict[str, float | None]:
    """Percentiles and means of TTFT, TPOT, end-to-end and queueing of completed
    requests (simulated or measured: `wrpfleet bench` writes the same table)."""
    out: dict[str, float | None] = {}
    for metric in ("ttft", "tpot", "e2e", "queue"):
        col = f"{metric}_s"
        values = done[col].dropna().to_numpy() if len(done) and col in done else np.zeros(0)
        for p in PERCENTILES:
            out[f"{metric}_p{p}_s"] = float(np.percentile(values, p)) if len(values) else None
        out[f"{metric}_mean_s"] = float(values.mean()) if len(values) else None
    return out


class Recorder:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.models = {p.name: p.model for p in scenario.pools}
        self.cols: dict[str, list] = defaultdict(list)
        self.requests_in = 0
        self.end_s = 0.0
        self.replica_rows: list[dict[str, Any]] = []
        self.scale_events: list[tuple] = []

    def released(self, req: Request, now: float) -> None:
        self.requests_in += 1

    def rejected(self, req: Request, now: float, reason: str) -> None:
        self._row(req, now, None, None, reason)

    def finished(self, seq: Seq, replica: Replica, now: float) -> Outcome | None:
        if seq.rejected:
            self._row(seq.req, seq.arrived, replica, None, seq.rejected)
            return None
        req, model = seq.req, self.models[replica.pool]
        p = p_good(model, req.category, req.difficulty, self.scenario.capabilities)
        quality = draw(self.scenario.seed, req.id, model, p)
        self._row(req, seq.arrived, replica, seq, None, quality)
        return Outcome(
            request_id=req.id,
            pool=replica.pool,
            replica=replica.name,
            arrival_s=seq.arrived,
            ttft_s=seq.first_token - seq.arrived,
            e2e_s=now - seq.arrived,
            output_tokens=req.output_tokens,
            energy_j=seq.energy_j,
            cost_usd=seq.cost_usd,
            quality=quality,
            category=req.category,
            model=model,
        )

    def _row(
        self,
        req: Request,
        released: float,
        replica,
        seq,
        reason: str | None,
        quality: float = np.nan,
    ) -> None:
        c = self.cols
        c["id"].append(req.id)
        c["arrival_s"].append(req.arrival_s)
        c["released_s"].append(released)
        c["input_tokens"].append(req.input_tokens)
        c["output_tokens"].append(req.output_tokens)
        c["category"].append(req.category)
        c["slo_class"].append(req.slo_class)
        c["session_id"].append(req.session_id)
        c["pool"].append(replica.pool if replica else None)
        c["replica"].append(replica.name if replica else None)
        c["rejected"].append(reason)
        c["prefill_replica"].append(seq.prefilled_on if seq is not None else None)
        c["quality"].append(quality)
        if seq is None:
            for k in ("queue_s", "ttft_s", "tpot_s", "e2e_s", "energy_j", "cost_usd"):
                c[k].append(np.nan)
            c["cached_tokens"].append(0)
            c["preemptions"].append(0)
            return
        e2e = seq.finished - released
        ttft = seq.first_token - released
        c["queue_s"].append(seq.scheduled - released)
        c["ttft_s"].append(ttft)
        n = req.output_tokens
        c["tpot_s"].append((e2e - ttft) / (n - 1) if n > 1 else np.nan)
        c["e2e_s"].append(e2e)
        c["energy_j"].append(seq.energy_j)
        c["cost_usd"].append(seq.cost_usd)
        c["cached_tokens"].append(seq.cached_tokens)
        c["preemptions"].append(seq.preemptions)

    def close(self, end: float, sim: Simulation) -> None:
        """Account every replica over the whole run, idle time included."""
        self.end_s = end
        for name, pool in sim.pools.items():
            for r in pool.replicas:
                held = (r.retired if r.retired is not None else end) - r.born
                idle_s = max(0.0, held - r.stats.busy_s)  # starting counts as idle power
                self.replica_rows.append(
                    {
                        "replica": r.name,
                        "pool": name,
                        "gpus": pool.spec.tp,
                        "born_s": r.born,
                        "retired_s": r.retired,
                        "held_s": held,
                        "busy_s": r.stats.busy_s,
                        "steps": r.stats.steps,
                        "events": r.stats.events,
                        "active_energy_j": r.stats.active_energy_j,
                        "idle_energy_j": idle_s * pool.perf.idle_power_w,
                        "cost_usd": pool.price_per_replica_hour * held / 3600,
                        "active_cost_usd": pool.price_per_replica_hour * r.stats.busy_s / 3600,
                        "unfinished": len(r.running) + len(r.waiting),
                    }
                )
        self.scale_events = list(sim.scale_log)

    # ------------------------------------------------------------------ outputs

    def requests(self) -> pd.DataFrame:
        return pd.DataFrame(self.cols)

    def timeline(self, sim: Simulation) -> pd.DataFrame:
        """Per replica, sampled: state, running and waiting requests, KV blocks used,
        power and the energy used so far (active and idle)."""
        frames = []
        for name, pool in sim.pools.items():
            for r in pool.replicas:
                df = pd.DataFrame(
                    r.stats.timeline,
                    columns=[
                        "t_s",
                        "state",
                        "running",
                        "waiting",
                        "kv_used",
                        "power_w",
                        "energy_j",
                    ],
                )
                df["kv_usage"] = df["kv_used"] / r.kv.total
                df["replica"], df["pool"] = r.name, name
                frames.append(df)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def replicas(self) -> pd.DataFrame:
        return pd.DataFrame(self.replica_rows)

    def summary(self) -> dict[str, Any]:
        df, reps = self.requests(), self.replicas()
        done = df[df["rejected"].isna()] if len(df) else df
        rejected = int(df["rejected"].notna().sum()) if len(df) else 0
        completed = len(done)
        out: dict[str, Any] = {
            "scenario": self.scenario.name,
            "requests_in": self.requests_in,
            "completed": completed,
            "rejected": rejected,
            "unfinished": self.requests_in - completed - rejected,
            "duration_s": self.end_s,
        }
        out.update(latency_figures(done))
        met = self._slo_met(done)
        out["slo_attainment"] = (
            float(met.sum() / (completed + rejected)) if completed + rejected else None
        )
        out["slo_targets"] = self._targets(done)
        span = self.end_s or 1.0
        output_tokens = int(done["output_tokens"].sum()) if completed else 0
        out["throughput_tok_s"] = output_tokens / span
        out["throughput_req_s"] = completed / span
        out["goodput_req_s"] = float(met.sum()) / span
        out["gpus"] = int(reps["gpus"].sum()) if len(reps) else 0  # every GPU ever held
        out["gpu_hours"] = float((reps["gpus"] * reps["held_s"]).sum()) / 3600 if len(reps) else 0.0
        out["scale_events"] = len(self.scale_events)
        out["cost_usd"] = float(reps["cost_usd"].sum()) if len(reps) else 0.0
        active = float(reps["active_energy_j"].sum()) if len(reps) else 0.0
        idle = float(reps["idle_energy_j"].sum()) if len(reps) else 0.0
        out["energy_kwh"] = (active + idle) / 3.6e6
        out["active_energy_kwh"] = active / 3.6e6
        out["idle_energy_kwh"] = idle / 3.6e6
        out["j_per_output_token"] = (active + idle) / output_tokens if output_tokens else None
        prompt = int(done["input_tokens"].sum()) if completed else 0
        out["prefix_hit_rate"] = float(done["cached_tokens"].sum()) / prompt if prompt else 0.0
        out["quality_mean"] = float(done["quality"].mean()) if completed else None
        out["usd_per_m_output_tokens"] = (
            out["cost_usd"] / output_tokens * 1e6 if output_tokens else None
        )
        out["preemptions"] = int(done["preemptions"].sum()) if completed else 0
        out["engine_events"] = int(reps["events"].sum()) if len(reps) else 0
        out["engine_steps"] = int(reps["steps"].sum()) if len(reps) else 0
        return out

    def _slo_met(self, done: pd.DataFrame) -> np.ndarray:
        """Per request: does it meet every per-request threshold of its SLO class?"""
        slo = self.scenario.slo
        met = np.ones(len(done), dtype=bool)
        if not len(done):
            return met
        for cls in done["slo_class"].unique():
            rows = (done["slo_class"] == cls).to_numpy()
            for t in slo.for_class(cls):
                values = done.loc[rows, f"{t.metric}_s"].to_numpy()
                ok = np.isnan(values) | (values <= t.threshold_s)  # 1-token answers have no TPOT
                met[np.flatnonzero(rows)[~ok]] = False
        return met

    def _targets(self, done: pd.DataFrame) -> list[dict[str, Any]]:
        """Each fleet-level target: the percentile reached against its threshold."""
        rows = []
        for t in self.scenario.slo.targets:
            values = done[f"{t.metric}_s"].dropna().to_numpy() if len(done) else np.zeros(0)
            value = float(np.percentile(values, t.percentile)) if len(values) else None
            rows.append(
                {
                    "target": t.key,
                    "threshold_s": t.threshold_s,
                    "value_s": value,
                    "met": value is not None and value <= t.threshold_s,
                }
            )
        return rows
