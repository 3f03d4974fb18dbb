"""Check the simulator against measurements, by simulating each measured configuration.

`mlenergy`: each row of an ML.ENERGY-style CSV becomes one replica (the row's GPU,
its GPU count as tensor parallelism, ``max_num_seqs`` as measured) driven by a
closed loop that keeps ``max_num_seqs`` requests in the system. Prompts are
``LMARENA_INPUT_TOKENS`` long (an assumption: the data set gives no input lengths)
and outputs lognormal with the row's mean and a coefficient of variation of 1.
Figures are read over the steady middle of the run (the middle half of completions),
not the ramp-up and drain.

`splitwise`: each row's batch of prompts arrives at once on an engine that prefills
it in one step (Splitwise's engine), priced with the ``splitwise`` constants: the
prompt time is the TTFT, the per-token time the mean TPOT. Batches whose KV cache
cannot fit the replica (so that a real engine prefills them in waves) are listed
but left out of the error, and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from wrpfleet.config import Scenario
from wrpfleet.pool.fit import LMARENA_INPUT_TOKENS, read_mlenergy, read_splitwise
from wrpfleet.schema import validate
from wrpfleet.sim.fleet import Simulation
from wrpfleet.sim.run import SimResult

OUTPUT_CV = 1.0


def _scenario(name: str, pool: dict[str, Any], workload: dict[str, Any]) -> Scenario:
    return validate(
        Scenario,
        {
            "name": name,
            "workload": workload,
            "pools": [{"name": "p", "replicas": 1, **pool}],
            "outputs": {"per_request": True, "timeline": True, "report": False},
        },
    )


def _mape(rows: list[dict[str, Any]], figures: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for f in figures:
        errs = [abs(r[f"{f}_sim"] / r[f"{f}_measured"] - 1) for r in rows if r[f"{f}_measured"]]
        out[f] = float(np.mean(errs)) if errs else float("nan")
    return out


def mlenergy(
    path: Path, on_row: Callable[[int, int], None] | None = None, limit: int | None = None
) -> dict[str, Any]:
    rows = read_mlenergy(Path(path))[:limit]
    out = []
    for i, row in enumerate(rows):
        seqs = row.max_num_seqs
        scenario = _scenario(
            f"mlenergy-{i}",
            {"model": row.model, "gpu": row.gpu, "tp": row.tp, "engine": {"max_num_seqs": seqs}},
            {
                "arrival": {"process": "closed", "users": seqs},
                "classes": [
                    {
                        "input": LMARENA_INPUT_TOKENS,
                        "output": {
                            "dist": "lognormal",
                            "mean": row.output_tokens,
                            "cv": OUTPUT_CV,
                            "max": 16 * row.output_tokens,
                        },
                    }
                ],
                "duration_s": None,
                "num_requests": 3 * seqs + 200,
            },
        )
        sim = Simulation(scenario)
        sim.run()
        result = SimResult.of(sim)
        tput, itl, power = _steady(result)
        out.append(
            {
                "model": row.model,
                "gpu": row.gpu,
                "tp": row.tp,
                "max_num_seqs": seqs,
                "throughput_measured": row.throughput,
                "throughput_sim": tput,
                "power_measured": row.power_w,
                "power_sim": power,
                "energy_per_token_measured": row.energy_per_token,
                "energy_per_token_sim": power / tput,
                "median_itl_measured": row.itl_s,
                "median_itl_sim": itl,
            }
        )
        if on_row:
            on_row(i + 1, len(rows))
    figures = ("throughput", "power", "energy_per_token", "median_itl")
    return {"rows": out, "mape": _mape(out, figures)}


def _steady(result: SimResult) -> tuple[float, float, float]:
    """Output tokens/s, median TPOT and mean power over the middle half of completions."""
    df = result.requests.dropna(subset=["e2e_s"])
    done = np.sort((df["released_s"] + df["e2e_s"]).to_numpy())
    t0, t1 = done[len(done) // 4], done[3 * len(done) // 4]
    finish = df["released_s"] + df["e2e_s"]
    window = df[(finish >= t0) & (finish <= t1)]
    tl = result.timeline
    energy = float(
        np.interp(t1, tl["t_s"], tl["energy_j"]) - np.interp(t0, tl["t_s"], tl["energy_j"])
    )
    # Tokens produced in the window: every running sequence decodes, not only finishers;
    # count them from the steps' share: output tokens / e2e time, integrated.
    tokens = _tokens_between(df, t0, t1)
    return tokens / (t1 - t0), float(window["tpot_s"].median()), energy / (t1 - t0)


def _tokens_between(df, t0: float, t1: float) -> float:
    """Output tokens generated in [t0, t1]: each request's tokens spread evenly over its
    decode time (first token to last)."""
    first = (df["released_s"] + df["ttft_s"]).to_numpy()
    last = (df["released_s"] + df["e2e_s"]).to_numpy()
    n = df["output_tokens"].to_numpy(dtype=float)
    span = np.maximum(last - first, 1e-12)
    overlap = np.clip(np.minimum(last, t1) - np.maximum(first, t0), 0, None)
    return float((n * overlap / span).sum())


def splitwise(
    path: Path, on_row: Callable[[int, int], None] | None = None, limit: int | None = None
) -> dict[str, Any]:
    rows = read_splitwise(Path(path))[:limit]
    out = []
    for i, row in enumerate(rows):
        batch, prompt, tokens = int(row.batch), int(row.input_tokens), int(row.output_tokens)
        scenario = _scenario(
            f"splitwise-{i}",
            {
                "model": row.model,
                "gpu": row.gpu,
                "tp": row.tp,
                "engine": {
                    "max_num_seqs": batch,
                    "max_num_batched_tokens": batch * prompt,
                    "calibration": "splitwise",
                    "max_model_len": prompt + tokens,
                    "enable_prefix_caching": False,
                },
            },
            {
                "arrival": {"process": "closed", "users": batch},
                "duration_s": None,
                "num_requests": batch,
                "classes": [{"input": prompt, "output": tokens}],
            },
        )
        sim = Simulation(scenario)
        sim.run()
        df = SimResult.of(sim).requests
        # A batch whose KV cache does not fit in the replica is prefilled in waves: its
        # prompt time is not one step's, so it is not comparable to the measurement.
        waves = df["ttft_s"].round(9).nunique()
        out.append(
            {
                "model": row.model,
                "gpu": row.gpu,
                "tp": row.tp,
                "batch": batch,
                "prompt_tokens": prompt,
                "output_tokens": tokens,
                "prompt_time_measured": row.prompt_s,
                "prompt_time_sim": float(df["ttft_s"].max()),
                "token_time_measured": row.token_s,
                "token_time_sim": float(df["tpot_s"].mean()),
                "kv_limited": bool(waves > 1),
            }
        )
        if on_row:
            on_row(i + 1, len(rows))
    comparable = [r for r in out if not r["kv_limited"]]
    return {
        "rows": out,
        "mape": _mape(comparable, ("prompt_time", "token_time")),
        "left_out_kv_limited": len(out) - len(comparable),
    }
