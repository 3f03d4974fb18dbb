"""What an ingress facing untrusted traffic checks before any replica is touched:
API keys, body size, prompt length, and per-key rate limits.

Keys are bearer tokens (``Authorization: Bearer KEY``) read from an environment
variable (comma-separated) and/or a file (one a line, ``#`` comments). Each key
(or, without keys, each client address) has a token bucket of ``burst`` requests
refilled at ``rate_per_s``; an empty bucket answers 429 with ``Retry-After``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wrpfleet.errors import InputError


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    kind: str
    retry_after_s: float | None = None


def read_keys(env: str | None = None, path: Path | None = None) -> frozenset[str]:
    keys: set[str] = set()
    if env:
        keys |= {k.strip() for k in os.environ.get(env, "").split(",") if k.strip()}
    if path is not None:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as e:
            raise InputError(f"cannot read the API keys: {e.strerror or e}", path=path) from None
        keys |= {line.split("#")[0].strip() for line in lines} - {""}
    return frozenset(keys)


@dataclass
class Guard:
    keys: frozenset[str] = frozenset()  # empty: no authentication
    rate_per_s: float | None = None  # per key (or client); None: no limit
    burst: int = 10
    max_body_bytes: int = 4 << 20
    max_prompt_tokens: int | None = None
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # who -> (tokens, at)

    def admit(self, authorization: str | None, client: str, body_bytes: int) -> Refusal | None:
        """None to let the request through, or why not (checked in this order: size,
        key, rate), before any replica is asked for anything."""
        if body_bytes > self.max_body_bytes:
            return Refusal(
                413, f"request body over {self.max_body_bytes} bytes", "invalid_request_error"
            )
        who = client
        if self.keys:
            scheme, _, key = (authorization or "").partition(" ")
            if scheme.lower() != "bearer" or key.strip() not in self.keys:
                return Refusal(401, "invalid or missing API key", "authentication_error")
            who = key.strip()
        if self.rate_per_s is not None:
            now = self.clock()
            tokens, at = self._buckets.get(who, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate_per_s)
            if tokens < 1.0:
                wait = (1.0 - tokens) / self.rate_per_s
                self._buckets[who] = (tokens, now)
                return Refusal(
                    429, f"rate limit: {self.rate_per_s:g} requests/s", "rate_limit_error", wait
                )
            self._buckets[who] = (tokens - 1.0, now)
        return None

    def check_prompt(self, tokens: int) -> Refusal | None:
        if self.max_prompt_tokens is not None and tokens > self.max_prompt_tokens:
            return Refusal(
                400,
                f"prompt of {tokens} tokens over the limit of {self.max_prompt_tokens}",
                "invalid_request_error",
            )
        return None

    @staticmethod
    def retry_after(refusal: Refusal) -> dict[str, str]:
        if refusal.retry_after_s is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(refusal.retry_after_s)))}
