"""Semantic routing: requests to models or pools by what they are, with Boolean
decision rules over request signals (as the vLLM Semantic Router does)::

    router:
      policy: semantic
      params:
        rules:
          - name: hard code
            priority: 10                      # the highest matching priority wins
            when: {all: [{category: code}, {difficulty: {min: 0.7}}]}
            pool: big
          - name: long or Spanish
            when: {any: [{input_tokens: {min: 8000}}, {language: es}]}
            pool: long
          - name: refunds
            when: {keywords: [refund, chargeback]}   # in the prompt text, any case
            pool: support
        default: small                        # no rule matches
        balance: least_requests               # inside the chosen pool

Signals: ``category``, ``language``, ``modality``, ``slo_class`` (a value or a list),
``difficulty`` and ``input_tokens`` (``{min, max}``), ``keywords`` (any of them, as
words), ``regex`` (searched in the prompt text); combined with ``all``, ``any`` and
``not``. Rules of equal priority are tried in file order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from wrpfleet.errors import InputError
from wrpfleet.router.base import balancer, register
from wrpfleet.types import FleetView, RequestView, RouteDecision

Predicate = Callable[[RequestView], bool]
TAGS = ("category", "language", "modality", "slo_class")
RANGES = ("difficulty", "input_tokens")


def compile_condition(cond: Any, where: str) -> Predicate:
    """A condition of the YAML above as a predicate; errors name where it is."""
    if not isinstance(cond, dict) or len(cond) != 1:
        raise InputError(
            f"a condition is a mapping with one key (all, any, not, {', '.join(TAGS)}, "
            f"{', '.join(RANGES)}, keywords, regex), got {cond!r}",
            field=where,
        )
    ((key, value),) = cond.items()
    here = f"{where}.{key}"
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise InputError(f"{key} takes a non-empty list of conditions", field=here)
        parts = [compile_condition(c, f"{here}[{i}]") for i, c in enumerate(value)]
        combine = all if key == "all" else any
        return lambda r: combine(p(r) for p in parts)
    if key == "not":
        inner = compile_condition(value, here)
        return lambda r: not inner(r)
    if key in TAGS:
        wanted = {value} if isinstance(value, str) else set(value)
        return lambda r: getattr(r, key) in wanted
    if key in RANGES:
        if not isinstance(value, dict) or not set(value) <= {"min", "max"} or not value:
            raise InputError(f"{key} takes {{min: x, max: y}} (either or both)", field=here)
        lo, hi = value.get("min", float("-inf")), value.get("max", float("inf"))
        return lambda r: lo <= getattr(r, key) <= hi
    if key == "keywords":
        words = [value] if isinstance(value, str) else list(value)
        pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)
        return lambda r: pattern.search(r.text) is not None
    if key == "regex":
        try:
            pattern = re.compile(value)
        except (re.error, TypeError) as e:
            raise InputError(f"bad regex {value!r}: {e}", field=here) from None
        return lambda r: pattern.search(r.text) is not None
    raise InputError(
        f"unknown signal {key!r}; available: all, any, not, {', '.join(TAGS + RANGES)}, "
        "keywords, regex",
        field=here,
    )


@register("semantic")
class Semantic:
    def __init__(
        self,
        rules: list[dict[str, Any]],
        default: str | None = None,
        balance: str = "least_requests",
        balance_params: dict[str, Any] | None = None,
    ) -> None:
        self.rules: list[tuple[int, int, str, str, Predicate]] = []
        for i, rule in enumerate(rules):
            where = f"router.params.rules[{i}]"
            extra = set(rule) - {"name", "priority", "when", "pool"}
            if extra or "when" not in rule or "pool" not in rule:
                raise InputError(
                    "a rule has when and pool, optionally name and priority"
                    + (f"; unknown: {', '.join(sorted(extra))}" if extra else ""),
                    field=where,
                )
            predicate = compile_condition(rule["when"], f"{where}.when")
            name = str(rule.get("name", f"rule {i}"))
            self.rules.append((-int(rule.get("priority", 0)), i, name, rule["pool"], predicate))
        self.rules.sort(key=lambda x: (x[0], x[1]))
        self.default = default
        self.balance = balancer(balance, balance_params)
        self.pools_named = {r[3] for r in self.rules} | ({default} if default else set())

    def decide(self, request: RequestView) -> tuple[str | None, str]:
        """The pool for a request and the rule that chose it."""
        for _, _, name, pool, matches in self.rules:
            if matches(request):
                return pool, name
        return self.default, "default"

    def route(self, request: RequestView, fleet: FleetView) -> RouteDecision:
        pool, rule = self.decide(request)
        if pool is None:
            return RouteDecision.reject("no rule matches and no default pool")
        view = next((p for p in fleet.pools if p.name == pool), None)
        decision = self.balance.place(request, view)
        return decision or RouteDecision.reject(f"{rule}: no ready replica in pool {pool}")
