"""Arrival processes match their target rate, burstiness and rate curves.

Statistical checks use fixed seeds; tolerances are four standard deviations of the
estimate (or the stated relative error where no closed form is handy).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from wrpfleet.schema import validate
from wrpfleet.workload.arrival import Arrival


def times(spec: dict, horizon: float, seed: int = 0) -> np.ndarray:
    process = validate(Arrival, spec)
    stream = process.times(np.random.default_rng(seed))
    return np.fromiter(itertools.takewhile(lambda t: t < horizon, stream), dtype=float)


def test_poisson_rate_and_cv():
    t = times({"process": "poisson", "rate": 10.0}, 2_000)
    expected = 10.0 * 2_000
    assert abs(len(t) - expected) < 4 * math.sqrt(expected)
    gaps = np.diff(t)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.03)
    assert np.all(gaps >= 0)


@pytest.mark.parametrize("cv", [0.5, 2.0, 4.0])
def test_gamma_hits_target_cv(cv):
    t = times({"process": "gamma", "rate": 5.0, "cv": cv}, 40_000)
    gaps = np.diff(t)
    assert len(t) / 40_000 == pytest.approx(5.0, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.06)


def test_onoff_rates_in_and_out_of_bursts():
    spec = {"process": "onoff", "rate_on": 20.0, "rate_off": 2.0, "on_s": 30, "off_s": 90}
    t = times(spec, 120 * 200)
    phase = np.mod(t, 120)
    on = np.count_nonzero(phase < 30) / (30 * 200)
    off = np.count_nonzero(phase >= 30) / (90 * 200)
    assert on == pytest.approx(20.0, rel=4 / math.sqrt(20 * 30 * 200))
    assert off == pytest.approx(2.0, rel=4 / math.sqrt(2 * 90 * 200))
    assert validate(Arrival, spec).mean_rate == pytest.approx((20 * 30 + 2 * 90) / 120)


def test_onoff_random_periods_keep_the_mean_rate():
    spec = {"process": "onoff", "rate_on": 10.0, "on_s": 10, "off_s": 10, "random_periods": True}
    t = times(spec, 40_000)
    assert len(t) / 40_000 == pytest.approx(5.0, rel=0.05)


def test_sinusoidal_follows_its_curve():
    spec = {
        "process": "sinusoidal",
        "mean_rate": 10.0,
        "amplitude": 0.8,
        "period_s": 1_000,
        "peak_s": 275,
    }
    cycles = 40
    t = times(spec, 1_000 * cycles)
    process = validate(Arrival, spec)
    counts, edges = np.histogram(np.mod(t, 1_000), bins=20, range=(0, 1_000))
    mids = (edges[:-1] + edges[1:]) / 2
    expected = process.rate_at(mids) * 50 * cycles  # rate x bin width x cycles
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected) + 20)
    assert counts.argmax() == np.abs(mids - 275).argmin()


def test_diurnal_defaults_to_a_day_peaking_at_two_pm():
    process = validate(Arrival, {"process": "diurnal", "mean_rate": 1.0})
    assert process.period_s == 86_400
    assert process.rate_at(np.array([14 * 3600.0]))[0] == pytest.approx(process.peak_rate)


def test_piecewise_steps_and_repeats():
    spec = {
        "process": "piecewise",
        "points": [[0, 5], [100, 20], [200, 0], [300, 5]],
        "repeat_s": 400,
    }
    t = times(spec, 400 * 50)
    phase = np.mod(t, 400)
    for lo, hi, rate in [(0, 100, 5), (100, 200, 20), (200, 300, 0), (300, 400, 5)]:
        n = np.count_nonzero((phase >= lo) & (phase < hi))
        expected = rate * (hi - lo) * 50
        assert abs(n - expected) <= 4 * math.sqrt(expected) + 1
    assert validate(Arrival, spec).mean_rate == pytest.approx(7.5, rel=1e-3)


def test_piecewise_linear_interpolates():
    process = validate(
        Arrival, {"process": "piecewise", "interpolation": "linear", "points": [[0, 0], [10, 10]]}
    )
    assert process.rate_at(np.array([5.0, 20.0])).tolist() == [5.0, 10.0]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"process": "poisson", "rate": 0}, "greater than 0"),
        ({"process": "piecewise", "points": [[5, 1]]}, "t = 0"),
        ({"process": "piecewise", "points": [[0, 1], [0, 2]]}, "increasing"),
        ({"process": "piecewise", "points": [[0, 0]]}, "every rate is 0"),
        ({"process": "sinusoidal", "mean_rate": 1, "amplitude": 1.5}, "less than or equal to 1"),
        ({"process": "weibull", "rate": 1}, "does not match any of the expected tags"),
    ],
)
def test_bad_arrival_specs(spec, message):
    from wrpfleet.errors import InputError

    with pytest.raises(InputError, match=message):
        validate(Arrival, spec)


def test_same_seed_same_times_other_seed_other_times():
    spec = {"process": "gamma", "rate": 3.0, "cv": 2.0}
    a, b, c = times(spec, 100, 1), times(spec, 100, 1), times(spec, 100, 2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a[: len(c)], c[: len(a)])
