"""The live energy meter: measured or estimated, never mixed; shares add up."""

from __future__ import annotations

import pytest

from wrpfleet.serve.energy import Attribution, EnergyMeter


def test_without_nvml_the_meter_estimates_and_says_why():
    joules = iter([5.0, 12.5])
    meter = EnergyMeter(2, lambda: next(joules))  # this machine has no GPU (nor driver)
    assert meter.source == "estimated" and not meter.measured
    assert meter.reason.startswith("NVML unavailable")
    assert meter.joules() == 5.0 and meter.joules() == 12.5
    twin = EnergyMeter(1, lambda: 1.0, use_nvml=False)
    assert twin.source == "estimated" and "twin" in twin.reason


def test_interval_energy_is_shared_by_tokens_and_conserved():
    a = Attribution()
    a.processed(1, 300)  # a prompt of 299 tokens and its first token
    a.processed(2, 100)
    a.close_interval(40.0)
    a.processed(1, 1)
    a.close_interval(2.0)
    a.close_interval(7.0)  # idle: nobody processed anything, nobody is charged
    one, two = a.pop(1), a.pop(2)
    assert one == pytest.approx(40.0 * 300 / 400 + 2.0)
    assert two == pytest.approx(40.0 * 100 / 400)
    assert one + two == pytest.approx(42.0)
    assert a.pop(1) == 0.0
