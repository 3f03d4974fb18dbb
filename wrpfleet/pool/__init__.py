"""Pools: where inference runs (specs now; catalogs and performance and power models next)."""

from wrpfleet.pool.spec import EngineSpec, FleetSpec, LinkSpec, PoolSpec

__all__ = ["EngineSpec", "FleetSpec", "LinkSpec", "PoolSpec"]
