"""Distributions of token lengths, think times and difficulties.

Each is a spec (YAML ``{dist: lognormal, mean: 800, cv: 1.2}``; a bare number means
a constant) with ``sample(rng, n)``. Samplers draw in chunks so a generator pays
numpy's per-call cost once per thousand requests, not once per request.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import scipy.stats
from pydantic import BeforeValidator, Field, PositiveFloat, model_validator

from wrpfleet.schema import ExistingPath, Spec


class _Dist(Spec):
    min: float | None = None
    max: float | None = None

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        x = self._draw(rng, n)
        if self.min is not None or self.max is not None:
            x = np.clip(x, self.min, self.max)
        return x

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError

    @property
    def mean(self) -> float:
        """Mean before clipping (for describing a workload before running it)."""
        raise NotImplementedError

    @model_validator(mode="after")
    def _bounds(self) -> _Dist:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Constant(_Dist):
    dist: Literal["constant"] = "constant"
    value: float = Field(ge=0)

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value, dtype=float)

    @property
    def mean(self) -> float:
        return self.value


class Uniform(_Dist):
    dist: Literal["uniform"]
    low: float
    high: float

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @model_validator(mode="after")
    def _order(self) -> Uniform:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is greater than high ({self.high})")
        return self


class Exponential(_Dist):
    dist: Literal["exponential"]
    mean_: PositiveFloat = Field(alias="mean")

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean_, n)

    @property
    def mean(self) -> float:
        return self.mean_


class Lognormal(_Dist):
    """Parametrised by its mean and coefficient of variation, the figures traces report."""

    dist: Literal["lognormal"]
    mean_: PositiveFloat = Field(alias="mean")
    cv: PositiveFloat

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        sigma2 = math.log1p(self.cv**2)
        return rng.lognormal(math.log(self.mean_) - sigma2 / 2, math.sqrt(sigma2), n)

    @property
    def mean(self) -> float:
        return self.mean_


class Gamma(_Dist):
    dist: Literal["gamma"]
    mean_: PositiveFloat = Field(alias="mean")
    cv: PositiveFloat

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        shape = 1 / self.cv**2
        return rng.gamma(shape, self.mean_ / shape, n)

    @property
    def mean(self) -> float:
        return self.mean_


class Scipy(_Dist):
    """Any distribution of ``scipy.stats`` by name, with its own parameters."""

    dist: Literal["scipy"]
    name: str
    params: dict[str, float] = {}

    @model_validator(mode="after")
    def _exists(self) -> Scipy:
        self.frozen()
        return self

    def frozen(self) -> Any:
        family = getattr(scipy.stats, self.name, None)
        if not isinstance(family, scipy.stats.rv_continuous | scipy.stats.rv_discrete):
            raise ValueError(f"{self.name!r} is not a scipy.stats distribution")
        try:
            frozen = family(**self.params)
            frozen.mean()
        except TypeError as e:
            raise ValueError(f"bad parameters for scipy.stats.{self.name}: {e}") from None
        return frozen

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.asarray(self.frozen().rvs(size=n, random_state=rng), dtype=float)

    @property
    def mean(self) -> float:
        return float(self.frozen().mean())


class Empirical(_Dist):
    """Resample observed values: a list, or a column of a trace (``input`` or ``output``)."""

    dist: Literal["empirical"]
    values: list[float] | None = None
    trace: ExistingPath | None = None
    column: Literal["input", "output"] = "input"
    format: str = "auto"

    @model_validator(mode="after")
    def _one_source(self) -> Empirical:
        if (self.values is None) == (self.trace is None):
            raise ValueError("give exactly one of 'values' or 'trace'")
        if self.values is not None and not self.values:
            raise ValueError("'values' is empty")
        return self

    def observed(self) -> np.ndarray:
        if self.values is not None:
            return np.asarray(self.values, dtype=float)
        inputs, outputs = trace_lengths(self.trace, self.format)
        return (inputs if self.column == "input" else outputs).astype(float)

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(self.observed(), n)

    @property
    def mean(self) -> float:
        return float(self.observed().mean())


@cache
def trace_lengths(path: Path, format: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(input, output) token lengths of every row of a trace, read once per process."""
    from wrpfleet.workload.trace import read_rows  # trace readers build on this module

    rows = list(read_rows(Path(path), format))
    return (
        np.fromiter((r.input_tokens for r in rows), dtype=np.int64, count=len(rows)),
        np.fromiter((r.output_tokens for r in rows), dtype=np.int64, count=len(rows)),
    )


def _constant_shorthand(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"dist": "constant", "value": value}
    return value


Dist = Annotated[
    Annotated[
        Constant | Uniform | Exponential | Lognormal | Gamma | Scipy | Empirical,
        Field(discriminator="dist"),
    ],
    BeforeValidator(_constant_shorthand),
]
"""A distribution spec; a bare number is a constant."""


class Sampler:
    """Draws from a distribution one value at a time, a chunk at a time underneath."""

    __slots__ = ("_buf", "_dist", "_i", "_rng", "chunk")

    def __init__(self, dist: _Dist, rng: np.random.Generator, chunk: int = 1024) -> None:
        self._dist, self._rng, self.chunk = dist, rng, chunk
        self._buf: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        if self._i >= len(self._buf):
            self._buf = self._dist.sample(self._rng, self.chunk).tolist()
            self._i = 0
        self._i += 1
        return self._buf[self._i - 1]

    def tokens(self) -> int:
        """A token count: rounded, at least 1."""
        return max(1, round(self()))
