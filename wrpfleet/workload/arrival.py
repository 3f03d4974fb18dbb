"""Arrival processes: when requests (or sessions) start.

Open-loop processes yield an endless, increasing stream of times from ``times(rng)``;
the workload cuts it at its horizon. Time-varying rates (diurnal, sinusoidal,
piecewise) are non-homogeneous Poisson processes drawn by thinning (Lewis and
Shedler): candidates at the peak rate, each kept with probability rate(t) / peak.
The closed loop is not a stream of times: its users wait for their last request
to finish, so it is carried out by the workload generator (`synthetic.py`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from wrpfleet.schema import Spec
from wrpfleet.workload.distribution import Dist

CHUNK = 4096


class _Open(Spec):
    def times(self, rng: np.random.Generator) -> Iterator[float]:
        """Arrival times from 0, increasing, without end."""
        raise NotImplementedError

    @property
    def mean_rate(self) -> float:
        raise NotImplementedError


class _Renewal(_Open):
    """Independent, identically distributed gaps between arrivals."""

    def times(self, rng: np.random.Generator) -> Iterator[float]:
        t = 0.0
        while True:
            times = t + np.cumsum(self._gaps(rng, CHUNK))
            yield from times.tolist()
            t = float(times[-1])

    def _gaps(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError


class _RateCurve(_Open):
    """A Poisson process whose rate follows ``rate_at(t)``, drawn by thinning."""

    def times(self, rng: np.random.Generator) -> Iterator[float]:
        peak = self.peak_rate
        t = 0.0
        while True:
            cand = t + np.cumsum(rng.exponential(1 / peak, CHUNK))
            keep = rng.uniform(0, peak, CHUNK) < self.rate_at(cand)
            yield from cand[keep].tolist()
            t = float(cand[-1])

    def rate_at(self, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def peak_rate(self) -> float:
        raise NotImplementedError


class Poisson(_Renewal):
    """Exponential inter-arrival times: the memoryless baseline."""

    process: Literal["poisson"]
    rate: PositiveFloat = Field(description="requests (or sessions) per second")

    def _gaps(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(1 / self.rate, n)

    @property
    def mean_rate(self) -> float:
        return self.rate


class GammaArrivals(_Renewal):
    """Gamma inter-arrival times with a chosen coefficient of variation (cv > 1: bursty)."""

    process: Literal["gamma"]
    rate: PositiveFloat
    cv: PositiveFloat

    def _gaps(self, rng: np.random.Generator, n: int) -> np.ndarray:
        shape = 1 / self.cv**2
        return rng.gamma(shape, 1 / (self.rate * shape), n)

    @property
    def mean_rate(self) -> float:
        return self.rate


class OnOff(_Open):
    """Bursts: Poisson at ``rate_on`` for ``on_s``, then ``rate_off`` for ``off_s``, repeated.

    With ``random_periods`` the period lengths are exponential with those means
    (a Markov-modulated Poisson process); otherwise they are fixed.
    """

    process: Literal["onoff"]
    rate_on: PositiveFloat
    rate_off: NonNegativeFloat = 0.0
    on_s: PositiveFloat
    off_s: PositiveFloat
    random_periods: bool = False

    def times(self, rng: np.random.Generator) -> Iterator[float]:
        start, on = 0.0, True
        while True:
            mean = self.on_s if on else self.off_s
            length = rng.exponential(mean) if self.random_periods else mean
            rate = self.rate_on if on else self.rate_off
            if rate > 0:
                n = rng.poisson(rate * length)
                yield from (start + np.sort(rng.uniform(0, length, n))).tolist()
            start += length
            on = not on

    @property
    def mean_rate(self) -> float:
        return (self.rate_on * self.on_s + self.rate_off * self.off_s) / (self.on_s + self.off_s)


class Sinusoidal(_RateCurve):
    """rate(t) = mean_rate * (1 + amplitude * cos(2 pi (t - peak_s) / period_s)).

    ``diurnal`` is the same curve with a day for its period; set ``period_s`` to a
    shorter "day" to see a whole cycle in a short run.
    """

    process: Literal["sinusoidal", "diurnal"]
    mean_rate_: PositiveFloat = Field(alias="mean_rate")
    amplitude: float = Field(0.5, ge=0, le=1)
    period_s: PositiveFloat = 86_400.0
    peak_s: float = Field(
        50_400.0, description="time of the peak within a period (default 14:00 of a day)"
    )

    def rate_at(self, t: np.ndarray) -> np.ndarray:
        phase = 2 * math.pi * (t - self.peak_s) / self.period_s
        return self.mean_rate_ * (1 + self.amplitude * np.cos(phase))

    @property
    def peak_rate(self) -> float:
        return self.mean_rate_ * (1 + self.amplitude)

    @property
    def mean_rate(self) -> float:
        return self.mean_rate_


class Piecewise(_RateCurve):
    """A rate curve through points ``[[t_s, rate], ...]``: steps or linear, optionally repeated."""

    process: Literal["piecewise"]
    points: list[tuple[NonNegativeFloat, NonNegativeFloat]] = Field(min_length=1)
    interpolation: Literal["step", "linear"] = "step"
    repeat_s: PositiveFloat | None = Field(
        None, description="repeat the curve with this period (e.g. 86400 for a daily profile)"
    )

    @model_validator(mode="after")
    def _check(self) -> Piecewise:
        ts = [t for t, _ in self.points]
        if ts != sorted(ts) or len(set(ts)) != len(ts):
            raise ValueError("points must have strictly increasing times")
        if ts[0] != 0:
            raise ValueError("the first point must be at t = 0")
        if self.peak_rate <= 0:
            raise ValueError("every rate is 0: no request would ever arrive")
        if self.repeat_s is not None and self.repeat_s <= ts[-1]:
            raise ValueError(f"repeat_s must exceed the last point's time ({ts[-1]})")
        return self

    def rate_at(self, t: np.ndarray) -> np.ndarray:
        ts = np.array([p[0] for p in self.points])
        rs = np.array([p[1] for p in self.points])
        if self.repeat_s is not None:
            t = np.mod(t, self.repeat_s)
        if self.interpolation == "linear":
            return np.interp(t, ts, rs)
        return rs[np.searchsorted(ts, t, side="right") - 1]

    @property
    def peak_rate(self) -> float:
        return max(r for _, r in self.points)

    @property
    def mean_rate(self) -> float:
        """Mean over one repeat period, or the last rate (it holds forever) without one."""
        if self.repeat_s is None:
            return self.points[-1][1]
        grid = np.linspace(0, self.repeat_s, 100_001)
        return float(np.trapezoid(self.rate_at(grid), grid) / self.repeat_s)


class ClosedLoop(Spec):
    """N users, each sending its next request ``think_s`` after its last one completed."""

    process: Literal["closed"]
    users: PositiveInt
    think_s: Dist = 0.0


Arrival = Annotated[
    Poisson | GammaArrivals | OnOff | Sinusoidal | Piecewise | ClosedLoop,
    Field(discriminator="process"),
]
