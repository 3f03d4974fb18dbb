"""Length, think-time and difficulty distributions draw what their specs say."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from wrpfleet.errors import InputError
from wrpfleet.schema import validate
from wrpfleet.workload.distribution import Dist, Sampler

N = 200_000


def draw(spec, n: int = N, seed: int = 0) -> np.ndarray:
    return validate(Dist, spec).sample(np.random.default_rng(seed), n)


def test_bare_number_is_a_constant():
    assert np.all(draw(128, 10) == 128)


@pytest.mark.parametrize(
    "spec, mean, cv",
    [
        ({"dist": "lognormal", "mean": 800, "cv": 1.2}, 800, 1.2),
        ({"dist": "gamma", "mean": 50, "cv": 0.5}, 50, 0.5),
        ({"dist": "exponential", "mean": 3.0}, 3.0, 1.0),
        ({"dist": "uniform", "low": 0, "high": 1}, 0.5, 1 / np.sqrt(12) / 0.5),
    ],
)
def test_mean_and_cv(spec, mean, cv):
    x = draw(spec)
    assert x.mean() == pytest.approx(mean, rel=0.02)
    assert x.std() / x.mean() == pytest.approx(cv, rel=0.05)
    assert validate(Dist, spec).mean == pytest.approx(mean)


def test_any_scipy_distribution_by_name():
    spec = {"dist": "scipy", "name": "weibull_min", "params": {"c": 1.5, "scale": 400}}
    x = draw(spec)
    assert x.mean() == pytest.approx(scipy.stats.weibull_min(c=1.5, scale=400).mean(), rel=0.02)


def test_clipping_bounds():
    x = draw({"dist": "lognormal", "mean": 1000, "cv": 2.0, "min": 10, "max": 4000})
    assert x.min() >= 10 and x.max() <= 4000
    assert np.count_nonzero(x == 4000) > 0


def test_empirical_values_and_trace(repo):
    x = draw({"dist": "empirical", "values": [1, 2, 3]}, 30_000)
    assert set(np.unique(x)) == {1, 2, 3}
    trace = repo / "workloads/traces/azure2023_conv_first2000.csv.gz"
    spec = {"dist": "empirical", "trace": str(trace), "column": "output"}
    observed = validate(Dist, spec).observed()
    assert len(observed) == 2_000
    assert draw(spec).mean() == pytest.approx(observed.mean(), rel=0.02)


def test_sampler_tokens_are_whole_and_positive():
    sampler = Sampler(
        validate(Dist, {"dist": "uniform", "low": 0, "high": 3}), np.random.default_rng(1)
    )
    values = [sampler.tokens() for _ in range(5_000)]
    assert all(isinstance(v, int) and v >= 1 for v in values)
    assert set(values) == {1, 2, 3}


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"dist": "scipy", "name": "nosuch"}, "not a scipy.stats distribution"),
        ({"dist": "scipy", "name": "gamma", "params": {"shape": 2}}, "bad parameters"),
        ({"dist": "lognormal", "mean": -1, "cv": 1}, "greater than 0"),
        ({"dist": "uniform", "low": 5, "high": 1}, "greater than high"),
        ({"dist": "constant", "value": 5, "min": 9, "max": 1}, "greater than max"),
        ({"dist": "empirical"}, "exactly one of"),
        ({"dist": "empirical", "trace": "/nonexistent.csv"}, "file not found"),
        ({"dist": "lognormal", "mean": 5, "cv": 1, "sigma": 2}, "unknown key 'sigma'"),
    ],
)
def test_bad_specs_are_clear_errors(spec, message):
    with pytest.raises(InputError, match=message):
        validate(Dist, spec)
