"""The performance and power model: shapes that must hold, and the shipped fit."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
from conftest import SHARED

from wrpfleet.config import Scenario
from wrpfleet.errors import InputError
from wrpfleet.pool.catalog import gpu, model
from wrpfleet.pool.fit import STACKS, errors
from wrpfleet.pool.perf import Batch, Constants, PerfModel
from wrpfleet.schema import validate
from wrpfleet.sim.fleet import Simulation


def perf(name: str = "Llama-3.1-8B", g: str = "H100-SXM", tp: int = 1) -> PerfModel:
    return PerfModel(gpu(g), model(name), tp)


def test_decode_is_memory_bound_and_grows_with_batch_and_context():
    p = perf()
    t = [float(p.iteration_time(Batch(decode_seqs=b, decode_ctx=b * 1000))) for b in (1, 8, 64)]
    assert t[0] < t[1] < t[2]
    weights_time = p.weight_bytes / p.peak_bytes
    assert t[0] > weights_time  # reading the weights once is the floor of a step
    longer = float(p.iteration_time(Batch(decode_seqs=64, decode_ctx=64 * 8000)))
    assert longer > t[2]


def test_vectorised_steps_equal_scalar_steps():
    p = perf()
    ctx = np.array([1000.0, 2000.0, 3000.0])
    many = p.iteration_time(Batch(decode_seqs=3, decode_ctx=ctx))
    one = [float(p.iteration_time(Batch(decode_seqs=3, decode_ctx=c))) for c in ctx]
    assert np.allclose(many, one, rtol=1e-12)


def test_prefill_is_compute_bound_and_tensor_parallelism_helps():
    big = Batch(prefill_tokens=8192, prefill_seqs=1, prefill_attn=8192 * 8193 / 2)
    p1, p4 = perf("Llama-3.1-70B", tp=4), perf("Llama-3.1-70B", tp=8)
    assert p1.flops(big) / p1.peak_flops > p1.bytes(big) / p1.peak_bytes
    assert float(p4.iteration_time(big)) < float(p1.iteration_time(big))


def test_power_between_idle_and_tdp():
    p = perf()
    g = gpu("H100-SXM")
    for b in (Batch(decode_seqs=1, decode_ctx=100), Batch(prefill_tokens=8192, prefill_seqs=4)):
        t = p.iteration_time(b)
        assert g.idle_w <= p.power_w(b, t) <= g.tdp_w
    assert g.idle_w < p.idle_power_w < g.tdp_w


def test_moe_touches_more_experts_as_the_batch_grows():
    m = model("Qwen3-30B-A3B")
    touched = [m.weights_touched("bf16", n) for n in (1, 16, 4096)]
    assert touched[0] < touched[1] < touched[2] <= m.weight_bytes("bf16")
    assert touched[2] == pytest.approx(m.weight_bytes("bf16"), rel=1e-3)
    dense = model("Llama-3.1-8B")
    assert dense.weights_touched("bf16", 1) == dense.weight_bytes("bf16")


def test_shipped_constants_reproduce_the_reported_errors():
    """fitted.json's figures come from its own constants on the calibration data."""
    report = json.loads(resources.files("wrpfleet.pool").joinpath("fitted.json").read_text())
    for stack, (name, read) in STACKS.items():
        rows = read(SHARED / "calibration" / name)
        got = errors(rows, Constants.fitted(stack))
        expected = report["stacks"][stack]["mape_in_sample"]
        assert got == pytest.approx(expected, rel=1e-6)
        assert set(report["stacks"][stack]["mape_leave_one_model_out_by_model"]) == {
            r.model for r in rows
        }


def test_a_model_that_does_not_fit_is_a_clear_error():
    s = validate(
        Scenario,
        {
            "name": "big",
            "workload": {"arrival": {"process": "poisson", "rate": 1}, "duration_s": 1},
            "pools": [{"name": "p", "model": "Llama-3.1-70B", "gpu": "H100-SXM"}],
        },
    )
    with pytest.raises(InputError, match=r"Llama-3.1-70B does not fit: 141.1 GB of weights"):
        Simulation(s)


def test_shipped_constants_are_the_fit_of_the_calibration_data():
    """Refitting the data gives the shipped constants: fitted.json cannot drift."""
    from wrpfleet.pool.fit import fit

    for stack, (name, read) in STACKS.items():
        rows = read(SHARED / "calibration" / name)
        refit, shipped = fit(rows), Constants.fitted(stack)
        assert errors(rows, refit) == pytest.approx(errors(rows, shipped), rel=1e-4)
