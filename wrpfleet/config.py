"""Scenarios: a workload, a fleet of pools, a router, an optional autoscaler and SLOs.

A scenario's ``workload`` and ``pools`` are either inline or a path (relative to
the scenario) to a workload spec, a trace file, or a pool spec file; errors in a
referenced file name that file. Every validation error names the file, the line,
the YAML path of the field, the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from wrpfleet.autoscale import AUTOSCALERS
from wrpfleet.errors import InputError
from wrpfleet.pool.spec import FleetSpec, LinkSpec, PoolSpec
from wrpfleet.registry import Registry
from wrpfleet.router import ROUTERS
from wrpfleet.schema import Spec, load_yaml_spec, read_yaml, validate
from wrpfleet.types import Request
from wrpfleet.workload import YAML_SUFFIXES, Workload, load_workload

Metric = Literal["ttft", "tpot", "e2e"]
_TARGET_KEY = re.compile(r"^(ttft|tpot|e2e)_p(\d+(?:\.\d+)?)_s$")
_TARGET_TEXT = re.compile(r"^\s*(ttft|tpot|e2e)_p(\d+(?:\.\d+)?)\s*<=\s*([\d.]+)\s*(ms|s)\s*$")


class SloTarget(Spec):
    """``percentile`` % of requests must see ``metric`` <= ``threshold_s``."""

    metric: Metric
    percentile: float = Field(gt=0, le=100)
    threshold_s: PositiveFloat

    @property
    def key(self) -> str:
        return f"{self.metric}_p{self.percentile:g}_s"


class Slo(Spec):
    """Latency targets for all requests, with optional overrides per SLO class.

    YAML: ``{ttft_p99_s: 2.0, tpot_p99_s: 0.08, classes: {batch: {e2e_p99_s: 600}}}``;
    on the command line: ``"ttft_p99<=2s,tpot_p99<=80ms"``.
    """

    targets: tuple[SloTarget, ...] = ()
    classes: dict[str, tuple[SloTarget, ...]] = {}

    @model_validator(mode="before")
    @classmethod
    def _from_keys(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"targets": cls.parse(data)}
        if not isinstance(data, dict) or "targets" in data:
            return data
        classes = data.get("classes", {})
        if not isinstance(classes, dict):
            return data
        return {
            "targets": _targets(data, allow_classes=True),
            "classes": {name: _targets(t) for name, t in classes.items()},
        }

    @staticmethod
    def parse(text: str) -> list[dict[str, Any]]:
        """``"ttft_p99<=2s,tpot_p99<=80ms"`` -> targets."""
        out = []
        for part in filter(str.strip, text.split(",")):
            m = _TARGET_TEXT.match(part)
            if not m:
                raise PydanticCustomError(
                    "slo_text",
                    "bad SLO target '{part}'; expected METRIC_pPCT<=VALUE(s|ms), "
                    "e.g. ttft_p99<=2s,tpot_p99<=80ms",
                    {"part": part},
                )
            metric, pct, value, unit = m.groups()
            scale = 1e-3 if unit == "ms" else 1.0
            out.append({"metric": metric, "percentile": pct, "threshold_s": float(value) * scale})
        return out

    def for_class(self, slo_class: str) -> tuple[SloTarget, ...]:
        """A class's targets: its own where it has them, the common ones otherwise."""
        own = {t.metric: t for t in self.classes.get(slo_class, ())}
        return tuple(own.pop(t.metric, t) for t in self.targets) + tuple(own.values())


def _targets(data: Any, allow_classes: bool = False) -> Any:
    if not isinstance(data, dict):
        return data
    out = []
    for key, value in data.items():
        if allow_classes and key == "classes":
            continue
        m = _TARGET_KEY.match(str(key))
        if not m:
            raise PydanticCustomError(
                "slo_key",
                "unknown SLO target '{key}'; expected (ttft|tpot|e2e)_p<PCT>_s such as "
                "ttft_p99_s, or 'classes'",
                {"key": key},
            )
        out.append({"metric": m.group(1), "percentile": m.group(2), "threshold_s": value})
    return out


def _buildable(registry: Registry, policy: str, params: dict[str, Any]) -> None:
    """A policy name and parameters its class accepts, checked when the file is read."""
    try:
        registry.build(policy, params)
    except InputError as e:
        raise ValueError(e.message) from None


class RouterSpec(Spec):
    """A routing policy by name, with its parameters (``router: least_requests`` for short)."""

    policy: str = "round_robin"
    params: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        return {"policy": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _known(self) -> RouterSpec:
        _buildable(ROUTERS, self.policy, self.params)
        return self


class AutoscalerSpec(Spec):
    """An autoscaling policy by name, called every ``interval_s`` simulated seconds."""

    policy: str
    interval_s: PositiveFloat = 10.0
    params: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        return {"policy": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _known(self) -> AutoscalerSpec:
        _buildable(AUTOSCALERS, self.policy, self.params)
        return self


class Outputs(Spec):
    """What a run writes, and where (default ``runs/<scenario name>``)."""

    dir: Path | None = None
    per_request: bool = True
    timeline: bool = True
    report: bool = True


class Scenario(Spec):
    """One experiment: a workload on a fleet under a router, judged against SLOs."""

    name: str
    description: str = ""
    workload: Workload
    pools: list[PoolSpec] = Field(min_length=1)
    kv_link: LinkSpec | None = None
    router: RouterSpec = RouterSpec()
    autoscaler: AutoscalerSpec | None = None
    slo: Slo = Slo()
    duration_s: PositiveFloat | None = Field(
        None, description="stop issuing requests after this many seconds (None: workload's end)"
    )
    seed: NonNegativeInt = 0
    capabilities: dict[str, dict[str, float]] = Field(
        {},
        description="answer quality model overrides: model -> category (or '*') -> "
        "capability in [0, 1] (see wrpfleet.pool.quality)",
    )
    max_requests: PositiveInt | None = Field(
        None, description="stop issuing requests after this many (None: no limit)"
    )
    rate_scale: PositiveFloat = Field(
        1.0,
        description="offered load multiplier: arrival times are divided by it (compare "
        "sweeps load this way)",
    )
    outputs: Outputs = Outputs()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", v):
            raise ValueError("use letters, digits, '_', '.' and '-' only (it names the run folder)")
        return v

    @field_validator("capabilities")
    @classmethod
    def _capabilities(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        bad = [f"{m}.{c}" for m, cats in v.items() for c, x in cats.items() if not 0 <= x <= 1]
        if bad:
            raise ValueError(f"capabilities are in [0, 1]: {', '.join(bad)}")
        return v

    @model_validator(mode="after")
    def _fleet(self) -> Scenario:
        FleetSpec(pools=self.pools, kv_link=self.kv_link)  # pools consistent with each other
        router = ROUTERS.build(self.router.policy, self.router.params)
        named = getattr(router, "pools_named", set())
        missing = sorted(set(named) - {p.name for p in self.pools})
        if missing:
            raise ValueError(
                f"router {self.router.policy} names pools the fleet lacks: {', '.join(missing)} "
                f"(the fleet has {', '.join(p.name for p in self.pools)})"
            )
        return self

    @property
    def fleet(self) -> FleetSpec:
        return FleetSpec(pools=self.pools, kv_link=self.kv_link)

    @property
    def out_dir(self) -> Path:
        return self.outputs.dir or Path("runs") / self.name

    def requests(self) -> Iterator[Request]:
        """The requests this scenario issues: its workload, seeded, cut at ``duration_s``."""
        stream = self.workload.requests(self.seed)
        if self.rate_scale != 1.0:
            k = self.rate_scale
            stream = (dataclasses.replace(r, arrival_s=r.arrival_s / k) for r in stream)
        if self.duration_s is not None:
            stream = itertools.takewhile(lambda r: r.arrival_s < self.duration_s, stream)
        if self.max_requests is not None:
            stream = itertools.islice(stream, self.max_requests)
        return stream


def load_scenario(
    path: str | Path,
    *,
    workload: str | Path | None = None,
    pools: str | Path | None = None,
    router: str | None = None,
    seed: int | None = None,
) -> Scenario:
    """Load a scenario, optionally replacing its workload (a spec or a trace), its pools
    (a pool spec file), its router (a policy name) or its seed, as ``wrpfleet simulate
    --workload/--pools/--router/--seed`` do."""
    path = Path(path)
    data, lines = read_yaml(path)
    if not isinstance(data, dict):
        raise InputError("a scenario is a mapping with name, workload, pools, ...", path=path)
    data = dict(data)
    base = path.parent
    if workload is not None:
        data["workload"] = load_workload(workload)
    elif isinstance(data.get("workload"), str):
        data["workload"] = _referenced(path, lines, "workload", data["workload"], load_workload)
    if pools is not None:
        _use_fleet(data, load_yaml_spec(FleetSpec, pools))
    elif isinstance(data.get("pools"), str):
        fleet = _referenced(
            path, lines, "pools", data["pools"], lambda p: load_yaml_spec(FleetSpec, p)
        )
        _use_fleet(data, fleet)
    if router is not None:
        data["router"] = router
    if seed is not None:
        data["seed"] = seed
    return validate(Scenario, data, path=path, lines=lines, base_dir=base)


def _referenced(path: Path, lines: dict, key: str, value: str, load: Any) -> Any:
    """Load the file a scenario names under ``key``, relative to the scenario."""
    target = Path(value).expanduser()
    target = target if target.is_absolute() else path.parent / target
    if not target.exists():
        raise InputError(f"file not found: {target}", path=path, line=lines.get((key,)), field=key)
    if key == "pools" and target.suffix.lower() not in YAML_SUFFIXES:
        raise InputError(
            "expected a pool spec file (.yaml)", path=path, line=lines.get((key,)), field=key
        )
    return load(target)


def _use_fleet(data: dict[str, Any], fleet: FleetSpec) -> None:
    data["pools"] = fleet.pools
    if fleet.kv_link is not None:
        data["kv_link"] = fleet.kv_link
