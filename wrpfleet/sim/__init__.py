"""The discrete-event simulator (simpy): replicas, KV cache, fleet, metrics."""

from wrpfleet.sim.run import SimResult, simulate

__all__ = ["SimResult", "simulate"]
