"""Base of every spec model, and the YAML loader behind all of them.

Specs are pydantic models that reject unknown keys and know where relative paths
are anchored. `load_yaml_spec` keeps the line of every key while parsing, so each
validation error comes out as ``file:line: yaml.path: what is wrong (got X)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)

from wrpfleet.errors import InputError, InputErrors

T = TypeVar("T")
Loc = tuple[str | int, ...]


class Spec(BaseModel):
    """A user-written spec: immutable; unknown keys are errors (which list the allowed ones)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @classmethod
    def keys(cls) -> list[str]:
        """The keys a user may write."""
        return sorted(f.alias or name for name, f in cls.model_fields.items())


def _model_at(kind: Any, loc: Loc) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc`` (pydantic's error path,
    union tags included) below ``kind``, or None if the path leaves the models."""

    def members(t: Any) -> list[Any]:
        while get_origin(t) is Annotated:
            t = get_args(t)[0]
        if get_origin(t) in (Union, UnionType):
            return [m for arg in get_args(t) for m in members(arg)]
        return [t]

    def tags(m: Any) -> set[Any]:
        if not (isinstance(m, type) and issubclass(m, BaseModel)):
            return set()
        return {
            v
            for f in m.model_fields.values()
            if get_origin(f.annotation) is Literal
            for v in get_args(f.annotation)
        }

    t = kind
    for part in loc:
        options = members(t)
        tagged = [m for m in options if part in tags(m)]
        if tagged and len(options) > 1:  # a discriminated union: the part is the tag
            t = tagged[0]
            continue
        model = next((m for m in options if isinstance(m, type) and issubclass(m, BaseModel)), None)
        if model is not None:
            field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
            if field is None:
                return None
            t = field.annotation
        else:
            container = next((m for m in options if get_origin(m) in (list, tuple, dict)), None)
            if container is None:
                return None
            t = get_args(container)[-1 if get_origin(container) is dict else 0]
    model = next((m for m in members(t) if isinstance(m, type) and issubclass(m, BaseModel)), None)
    return model


def _unknown_key(kind: Any, loc: Loc) -> str:
    key = loc[-1]
    model = _model_at(kind, loc[:-1])
    if model is None:
        return f"unknown key {key!r}"
    allowed = model.keys() if issubclass(model, Spec) else sorted(model.model_fields)
    close = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r}{hint}; allowed: {', '.join(allowed)}"


def _anchor(value: Path, info: ValidationInfo) -> Path:
    """Resolve a relative path against the directory of the file that named it."""
    base = (info.context or {}).get("base_dir")
    path = value.expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    if not path.exists():
        raise ValueError(f"file not found: {path}")
    return path


ExistingPath = Annotated[Path, AfterValidator(_anchor)]
"""A path to an existing file; relative paths are relative to the spec that names them."""


def read_yaml(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Parse YAML and map every key path to its 1-based line. Duplicate keys are errors."""
    try:
        text = path.read_text()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", path=path) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise InputError(
            f"invalid YAML: {e.problem or e.context}",
            path=path,
            line=mark.line + 1 if mark else None,
        ) from None
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    if node is not None:
        _map_lines(node, (), lines, path)
    return data, lines


def _map_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: Path) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise InputError(
                    f"duplicate key {key!r}", path=path, line=key_node.start_mark.line + 1
                )
            seen.add(key)
            lines[(*loc, key)] = key_node.start_mark.line + 1
            _map_lines(value_node, (*loc, key), lines, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _map_lines(item, (*loc, i), lines, path)


def _yaml_path(keys: Loc) -> str:
    out = ""
    for k in keys:
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else str(k))
    return out


def to_input_errors(
    error: ValidationError, data: Any, lines: Mapping[Loc, int], path: Path | None, kind: Any
) -> InputErrors:
    """Translate pydantic's errors into located, readable ones."""
    found: list[InputError] = []
    for err in error.errors(include_url=False):
        loc = list(err["loc"])
        # Walk the data along the error's location; parts that are not in the data
        # (union tags, validator names) are pydantic's, not the user's.
        keys: list[str | int] = []
        node = data
        for part in loc:
            if (isinstance(node, Mapping) and part in node) or (
                isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            ):
                keys.append(part)
                node = node[part]
        if err["type"] == "missing":
            keys.append(loc[-1])  # the absent key itself
        line = None
        for n in range(len(keys), -1, -1):
            if (line := lines.get(tuple(keys[:n]))) is not None:
                break
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required, but missing"
        if err["type"] == "extra_forbidden":
            msg = _unknown_key(kind, tuple(loc))
        if err["type"] not in {"extra_forbidden", "missing"} and not isinstance(
            err.get("input"), Mapping | list
        ):
            msg += f" (got {err.get('input')!r})"
        found.append(InputError(msg, path=path, line=line, field=_yaml_path(keys) or None))
    return InputErrors(sorted(found, key=lambda e: e.line or 0))


def validate(
    kind: type[T] | Any,
    data: Any,
    *,
    path: Path | None = None,
    lines: Mapping[Loc, int] | None = None,
    base_dir: Path | None = None,
) -> T:
    """Validate ``data`` as ``kind`` (a model or any type), with located errors."""
    if base_dir is None and path is not None:
        base_dir = path.parent
    adapter = TypeAdapter(kind)
    try:
        return adapter.validate_python(data, context={"base_dir": base_dir})
    except ValidationError as e:
        raise to_input_errors(e, data, lines or {}, path, kind) from None


def load_yaml_spec(kind: type[T] | Any, path: str | Path) -> T:
    """Read a YAML file and validate it as ``kind``."""
    path = Path(path)
    data, lines = read_yaml(path)
    if data is None:
        raise InputError("empty file", path=path)
    return validate(kind, data, path=path, lines=lines)
