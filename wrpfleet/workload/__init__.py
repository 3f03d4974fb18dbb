"""Workloads: what the fleet serves, as one lazy, seeded stream of `Request`s.

A workload is a spec (YAML or Python) with ``requests(seed)``: synthetic
(`SyntheticWorkload`: arrival process x class mix) or replayed (`TraceWorkload`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Discriminator, Tag

from wrpfleet.errors import InputError
from wrpfleet.schema import read_yaml, validate
from wrpfleet.workload.synthetic import PRESETS, RequestClass, SyntheticWorkload
from wrpfleet.workload.trace import FORMATS, ReadReport, TraceWorkload, detect_format, read_rows

YAML_SUFFIXES = (".yaml", ".yml")


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("kind", "trace" if "path" in value else "synthetic")
    return getattr(value, "kind", "synthetic")


Workload = Annotated[
    Annotated[SyntheticWorkload, Tag("synthetic")] | Annotated[TraceWorkload, Tag("trace")],
    Discriminator(
        _kind,
        custom_error_type="workload_kind",
        custom_error_message="kind must be 'synthetic' or 'trace'",
    ),
]
"""A workload spec: ``kind: synthetic`` (the default) or ``kind: trace``."""


def is_scenario(path: Path) -> bool:
    """A YAML file is a scenario when it names a workload (and pools) at its top."""
    data, _ = read_yaml(path)
    return isinstance(data, dict) and "workload" in data


def load_workload(
    source: str | Path,
    *,
    format: str = "auto",
    skip_bad_lines: bool = False,
) -> SyntheticWorkload | TraceWorkload:
    """A workload from a YAML spec, a scenario (its workload) or a trace file."""
    path = Path(source)
    if not path.exists():
        raise InputError("file not found", path=path)
    if path.suffix.lower() in YAML_SUFFIXES:
        if is_scenario(path):
            from wrpfleet.config import load_scenario

            return load_scenario(path).workload
        data, lines = read_yaml(path)
        if data is None:
            raise InputError("empty file", path=path)
        return validate(Workload, data, path=path, lines=lines)
    spec = {"kind": "trace", "path": path, "format": format, "skip_bad_lines": skip_bad_lines}
    return validate(TraceWorkload, spec, base_dir=Path.cwd())


__all__ = [
    "FORMATS",
    "PRESETS",
    "ReadReport",
    "RequestClass",
    "SyntheticWorkload",
    "TraceWorkload",
    "Workload",
    "detect_format",
    "is_scenario",
    "load_workload",
    "read_rows",
]
