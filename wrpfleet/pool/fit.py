"""Fit the performance and power constants once, across models, on measured data.

Two public data sets (``../shared/data/calibration/``, see its SOURCES.md):

- ML.ENERGY leaderboard v3 (vLLM 0.11, LM Arena chat prompts, batch held at
  ``max_num_seqs``): output tokens/s, median inter-token latency and average power
  of Llama-3.1-8B/70B, Qwen3-8B/14B and gemma-3-12b on H100 and B200;
- Splitwise (microsoft/splitwise-sim): prompt time and per-token time of Llama-2-70B
  and BLOOM-176B on A100 and H100 at 2 to 8 GPUs (power-capped rows left out).

A serving benchmark in steady state is modelled analytically: ``B`` sequences
decode at a mean context of ``input + output/2`` while ``B / output`` new prompts
per step are prefilled alongside. The constants minimise squared log errors, each
data set weighing the same. ``python -m wrpfleet.pool.fit [CALIBRATION_DIR]``
refits, prints the leave-one-model-out errors and writes ``fitted.json``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats
from scipy.optimize import least_squares

from wrpfleet.errors import InputError
from wrpfleet.pool.catalog import gpu as gpu_spec
from wrpfleet.pool.catalog import model as model_spec
from wrpfleet.pool.perf import Batch, Constants, PerfModel

LMARENA_INPUT_TOKENS = 256
"""Assumed mean prompt length of ML.ENERGY's LM Arena chat requests (the data set
reports output lengths only); short chat prompts, documented in the README."""

GLOBAL_TIME = ("overlap_p", "step_overhead_s", "seq_overhead_s")
PER_GPU_TIME = ("compute_eff", "memory_eff")
PER_GPU_POWER = ("power_floor", "power_compute", "power_memory")
BOUNDS = {
    "compute_eff": (0.05, 1.0),
    "memory_eff": (0.05, 1.0),
    "overlap_p": (1.0, 20.0),
    "step_overhead_s": (0.0, 0.05),
    "seq_overhead_s": (0.0, 1e-3),
    "allreduce_latency_s": (0.0, 1e-3),
    "link_eff": (0.01, 1.0),
    "power_floor": (0.0, 1.0),
    "power_compute": (0.0, 3.0),
    "power_memory": (0.0, 3.0),
}
Param = tuple[str, str | None]  # (constant, GPU it is fitted for, or None: global)
SPLITWISE_GPUS = {"a100-80gb": "A100-80GB", "h100-80gb": "H100-SXM"}


@dataclass(frozen=True)
class Row:
    """One measured configuration, with what to predict."""

    source: str  # "mlenergy" or "splitwise"
    model: str
    gpu: str
    tp: int
    batch: float
    input_tokens: float
    output_tokens: float
    throughput: float | None = None  # output tokens/s
    itl_s: float | None = None  # median inter-token latency
    power_w: float | None = None  # all GPUs together
    prompt_s: float | None = None  # splitwise: prefill of the whole batch
    token_s: float | None = None  # splitwise: one decode step
    max_num_seqs: int | None = None  # mlenergy: the engine's limit (batch is its average)
    energy_per_token: float | None = None  # mlenergy: J per output token


class _Cells:
    """One CSV record whose conversions fail with the file, line and column."""

    def __init__(self, path: Path, line: int, record: dict[str, str]) -> None:
        self.path, self.line, self.record = path, line, record

    def _fail(self, name: str, message: str) -> InputError:
        return InputError(message, path=self.path, line=self.line, field=name)

    def num(self, name: str, kind: type = float) -> Any:
        try:
            return kind(self.record[name])
        except (TypeError, ValueError):
            raise self._fail(name, f"not a number: {self.record[name]!r}") from None

    def named(self, name: str, lookup: Any) -> str:
        """A catalog name (model or GPU) for the column's value."""
        try:
            return lookup(self.record[name]).name
        except InputError as e:
            raise self._fail(name, e.message) from None


def _records(path: Path, required: tuple[str, ...]) -> Iterator[_Cells]:
    try:
        f = open(path, newline="")  # noqa: SIM115 (closed by the with below)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", path=path) from None
    with f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"missing column(s): {', '.join(missing)}", path=path, line=1)
        for record in reader:
            yield _Cells(path, reader.line_num, record)


MLENERGY_COLUMNS = (
    "model_id",
    "gpu_model",
    "tensor_parallel",
    "max_num_seqs",
    "avg_batch_size",
    "avg_output_len",
    "output_throughput_tokens_per_sec",
    "avg_power_watts",
    "energy_per_token_joules",
    "median_itl_ms",
)
SPLITWISE_COLUMNS = (
    "model",
    "hardware",
    "tensor_parallel",
    "prompt_size",
    "batch_size",
    "token_size",
    "prompt_time",
    "token_time",
)


def read_mlenergy(path: Path) -> list[Row]:
    rows = []
    for c in _records(Path(path), MLENERGY_COLUMNS):
        rows.append(
            Row(
                "mlenergy",
                c.named("model_id", model_spec),
                c.named("gpu_model", gpu_spec),
                c.num("tensor_parallel", int),
                c.num("avg_batch_size"),
                LMARENA_INPUT_TOKENS,
                c.num("avg_output_len"),
                throughput=c.num("output_throughput_tokens_per_sec"),
                itl_s=c.num("median_itl_ms") / 1e3,
                power_w=c.num("avg_power_watts"),
                max_num_seqs=c.num("max_num_seqs", int),
                energy_per_token=c.num("energy_per_token_joules"),
            )
        )
    return rows


def read_splitwise(path: Path) -> list[Row]:
    """One row per (model, GPU, TP, prompt size, batch size): repeats are averaged."""
    groups: dict[tuple, list[tuple[float, float]]] = {}
    for c in _records(Path(path), SPLITWISE_COLUMNS):
        if c.record["hardware"] not in SPLITWISE_GPUS:
            continue  # power-capped H100 rows measure a different machine
        key = (
            c.named("model", model_spec),
            SPLITWISE_GPUS[c.record["hardware"]],
            c.num("tensor_parallel", int),
            c.num("prompt_size"),
            c.num("batch_size"),
            c.num("token_size"),
        )
        groups.setdefault(key, []).append((c.num("prompt_time"), c.num("token_time")))
    rows = []
    for (model, gpu, tp, prompt, batch, tokens), times in sorted(groups.items()):
        prompt_ms, token_ms = np.mean(times, axis=0)
        rows.append(
            Row(
                "splitwise",
                model,
                gpu,
                tp,
                batch,
                prompt,
                tokens,
                prompt_s=float(prompt_ms) / 1e3,
                token_s=float(token_ms) / 1e3,
            )
        )
    return rows


def steady_batch(
    batch: float, input_tokens: float, output_tokens: float, new: float | None = None
) -> Batch:
    """An engine step of a closed loop holding ``batch`` sequences with ``new`` prompts
    admitted (by default the mean, ``batch / output_tokens`` a step)."""
    new = batch / output_tokens if new is None else new
    return Batch(
        prefill_tokens=new * input_tokens,
        prefill_seqs=new,
        prefill_attn=new * input_tokens * (input_tokens + 1) / 2,
        decode_seqs=batch,
        decode_ctx=batch * (input_tokens + output_tokens / 2),
    )


@functools.cache
def _median_admissions(batch: float, output_tokens: float) -> float:
    """Prompts admitted per step are Poisson: the median step has the median count."""
    return float(scipy.stats.poisson(batch / output_tokens).median())


def predict_many(rows: list[Row], c: Constants) -> list[dict[str, float]]:
    """Predicted figures of each row: one vectorised PerfModel per (model, GPU, TP)."""
    out: list[dict[str, float]] = [{} for _ in rows]
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r.source, r.model, r.gpu, r.tp), []).append(i)
    for (source, model, gpu, tp), idx in groups.items():
        perf = PerfModel(gpu_spec(gpu), model_spec(model), tp, "bf16", c)
        rs = [rows[i] for i in idx]
        batch = np.array([r.batch for r in rs])
        prompt = np.array([r.input_tokens for r in rs])
        answer = np.array([r.output_tokens for r in rs])
        if source == "mlenergy":
            mean = steady_batch(batch, prompt, answer)
            t = perf.iteration_time(mean)
            typical = np.array([_median_admissions(r.batch, r.output_tokens) for r in rs])
            itl = perf.iteration_time(steady_batch(batch, prompt, answer, typical))
            power = perf.power_w(mean, t)
            figures = {"throughput": batch / t, "itl_s": itl, "power_w": power}
        else:
            prefill = Batch(
                prefill_tokens=batch * prompt,
                prefill_seqs=batch,
                prefill_attn=batch * prompt * (prompt + 1) / 2,
            )
            decode = Batch(decode_seqs=batch, decode_ctx=batch * (prompt + answer / 2))
            figures = {
                "prompt_s": perf.iteration_time(prefill),
                "token_s": perf.iteration_time(decode),
            }
        for k, i in enumerate(idx):
            out[i] = {
                name: float(np.broadcast_to(v, batch.shape)[k]) for name, v in figures.items()
            }
    return out


def predict(row: Row, c: Constants) -> dict[str, float]:
    return predict_many([row], c)[0]


def _targets(rows: list[Row], names: tuple[str, ...]) -> list[tuple[int, str, float, float]]:
    """(row index, figure, measured, weight): each (source, figure) pair weighs the same."""
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        for n in names:
            if getattr(r, n) is not None:
                counts[(r.source, n)] = counts.get((r.source, n), 0) + 1
    return [
        (i, n, getattr(r, n), 1 / math.sqrt(counts[(r.source, n)]))
        for i, r in enumerate(rows)
        for n in names
        if getattr(r, n) is not None
    ]


def _with(base: Constants, params: list[Param], x: np.ndarray) -> Constants:
    common = {name: v for (name, gpu), v in zip(params, x.tolist(), strict=True) if gpu is None}
    per_gpu = {g: dict(d) for g, d in base.per_gpu.items()}
    for (name, gpu), v in zip(params, x.tolist(), strict=True):
        if gpu is not None:
            per_gpu.setdefault(gpu, {})[name] = v
    return replace(base, **common, per_gpu=per_gpu)


def _solve(rows: list[Row], names: tuple[str, ...], params: list[Param], base: Constants):
    targets = _targets(rows, names)
    start = [base.for_gpu(g).__getattribute__(n) if g else getattr(base, n) for n, g in params]
    lower = [BOUNDS[n][0] for n, _ in params]
    upper = [BOUNDS[n][1] for n, _ in params]
    x0 = np.clip(start, lower, upper)

    def residuals(x: np.ndarray) -> np.ndarray:
        predicted = predict_many(rows, _with(base, params, x))
        return np.array(
            [w * math.log(predicted[i][name] / measured) for i, name, measured, w in targets]
        )

    solution = least_squares(residuals, x0, bounds=(lower, upper), x_scale="jac")
    return _with(base, params, solution.x)


def fit(rows: list[Row]) -> Constants:
    """Time constants on every timing figure, then power constants on the power figures
    (where the rows measured power). Efficiencies and power are fitted per GPU measured."""
    gpus = sorted({r.gpu for r in rows})
    reference = "H100-SXM" if "H100-SXM" in gpus else gpus[0]
    base = Constants(reference_gpu=reference)
    time_params: list[Param] = [(n, None) for n in GLOBAL_TIME]
    # Tensor-parallel constants only where the rows can identify them; otherwise they
    # keep their defaults (a model held out of a fold may be the only one with TP).
    if any(r.tp > 1 for r in rows):
        time_params.append(("allreduce_latency_s", None))
    if any(len({r.tp for r in rows if r.model == m}) > 1 for m in {r.model for r in rows}):
        time_params.append(("link_eff", None))
    time_params += [(n, g) for g in gpus for n in PER_GPU_TIME]
    c = _solve(rows, ("throughput", "itl_s", "prompt_s", "token_s"), time_params, base)
    powered = sorted({r.gpu for r in rows if r.power_w is not None})
    if powered:
        c = _solve(rows, ("power_w",), [(n, g) for g in powered for n in PER_GPU_POWER], c)
    return c


def errors(rows: list[Row], c: Constants) -> dict[str, float]:
    """Mean absolute percentage error of each figure, as fractions."""
    errs: dict[str, list[float]] = {}
    for r, predicted in zip(rows, predict_many(rows, c), strict=True):
        for name, value in predicted.items():
            measured = getattr(r, name)
            errs.setdefault(name, []).append(abs(value / measured - 1))
    return {name: float(np.mean(v)) for name, v in errs.items()}


def leave_one_model_out(rows: list[Row]) -> dict[str, dict[str, float]]:
    """Fit on every model but one, predict that one: the honest error."""
    out = {}
    for m in sorted({r.model for r in rows}):
        train = [r for r in rows if r.model != m]
        test = [r for r in rows if r.model == m]
        out[m] = errors(test, fit(train))
    return out


def pooled(per_model: dict[str, dict[str, float]], rows: list[Row]) -> dict[str, float]:
    """Row-weighted mean of per-model errors."""
    n = {m: sum(1 for r in rows if r.model == m) for m in per_model}
    figures = {f for e in per_model.values() for f in e}
    out = {}
    for f in sorted(figures):
        ms = [m for m in per_model if f in per_model[m]]
        out[f] = sum(per_model[m][f] * n[m] for m in ms) / sum(n[m] for m in ms)
    return out


STACKS = {
    "vllm": ("mlenergy_v3_lm_arena_chat.csv", read_mlenergy),
    "splitwise": ("splitwise_perf_model.csv", read_splitwise),
}
"""Each software stack gets its own constants: step overheads and TP efficiency are
properties of the engine (vLLM 0.11 with CUDA graphs against Splitwise's 2023 engine),
not of the model. ``vllm`` is the simulator's default."""


def fit_stack(calibration: Path, stack: str) -> dict[str, Any]:
    """Fit one stack and measure its in-sample and leave-one-model-out errors."""
    name, read = STACKS[stack]
    rows = read(calibration / name)
    c = fit(rows)
    lomo = leave_one_model_out(rows)
    return {
        "data": name,
        "rows": len(rows),
        "constants": c.to_dict(),
        "mape_in_sample": errors(rows, c),
        "mape_leave_one_model_out": pooled(lomo, rows),
        "mape_leave_one_model_out_by_model": lomo,
    }


def main(argv: list[str] | None = None) -> None:
    default = Path(__file__).resolve().parents[3] / "shared" / "data" / "calibration"
    parser = argparse.ArgumentParser(description="Fit the performance and power constants.")
    parser.add_argument("calibration", nargs="?", type=Path, default=default)
    parser.add_argument("--write", action="store_true", help="write wrpfleet/pool/fitted.json")
    args = parser.parse_args(argv)
    report = {
        "lmarena_input_tokens": LMARENA_INPUT_TOKENS,
        "stacks": {stack: fit_stack(args.calibration, stack) for stack in STACKS},
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    if args.write:
        path = Path(__file__).with_name("fitted.json")
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
