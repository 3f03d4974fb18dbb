"""Policies by the names YAML and the command line use for them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from wrpfleet.errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named policy classes of one kind (routers, autoscalers), built from their params."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.classes: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type], type]:
        def deco(cls: type) -> type:
            self.classes[name] = cls
            cls.name = name
            return cls

        return deco

    def build(self, policy: str, params: dict[str, Any] | None = None) -> T:
        """An instance; unknown names and parameters are errors that list what exists."""
        if policy not in self.classes:
            raise InputError(
                f"unknown {self.kind} {policy!r}; available: {', '.join(sorted(self.classes))}",
                field=self.kind,
            )
        try:
            return self.classes[policy](**(params or {}))
        except TypeError as e:
            raise InputError(
                f"bad parameters for {self.kind} {policy!r}: {e}", field=self.kind
            ) from None
