"""Affinity routing: send a request where its prefix is cached, or where its session lives.

A router cannot see an engine's prefix cache (live, vLLM does not export it), so
`PrefixIndex` keeps the router's own record of which prompt blocks it sent where,
least recently used first and bounded by each replica's KV capacity, as llm-d's
approximate prefix-cache scorer does. The simulator and the live ingress both
build it from their routing decisions alone, so it behaves the same in both.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections import OrderedDict

from wrpfleet.errors import InputError
from wrpfleet.router.base import Balancer, least_loaded, register
from wrpfleet.types import ReplicaView, RequestView


class PrefixIndex:
    """Which replicas probably hold which prompt blocks."""

    def __init__(self, engine_block_tokens: int = 16) -> None:
        self.engine_block_tokens = engine_block_tokens
        self._lru: dict[str, OrderedDict[int, None]] = {}
        self._holders: dict[int, set[str]] = {}

    def match(self, ids: tuple[int, ...], replicas: list[ReplicaView]) -> dict[str, int]:
        """Leading blocks of ``ids`` each replica probably holds (absent: none)."""
        depth: dict[str, int] = {}
        alive = {r.id for r in replicas}
        n = 0
        for i in ids:
            held = self._holders.get(i)
            if not held:
                break
            nxt = alive & held
            if not nxt:
                break
            if n:
                depth.update(dict.fromkeys(alive - nxt, n))
            alive = nxt
            n += 1
        if n:
            depth.update(dict.fromkeys(alive, n))
        return depth

    def record(self, replica: ReplicaView, ids: tuple[int, ...], block_tokens: int) -> None:
        """The replica now computes (and will cache) these blocks."""
        if not ids:
            return
        lru = self._lru.setdefault(replica.id, OrderedDict())
        for i in ids:
            if i in lru:
                lru.move_to_end(i)
            else:
                lru[i] = None
                self._holders.setdefault(i, set()).add(replica.id)
        capacity = replica.kv_total_blocks * self.engine_block_tokens // max(block_tokens, 1)
        while len(lru) > max(capacity, len(ids)):
            old, _ = lru.popitem(last=False)
            held = self._holders[old]
            held.discard(replica.id)
            if not held:
                del self._holders[old]


@register("prefix_affinity")
class PrefixAffinity(Balancer):
    """The replica holding the longest prefix of the prompt (least loaded among equals),
    if it holds at least ``min_match`` of the prompt's blocks; the least loaded replica
    when no replica holds that much, or when the best match is overloaded (``slack``
    more outstanding requests than the least loaded replica, or KV usage above
    ``max_kv_usage``). As SGLang's cache-aware router does: a short shared prefix
    (a system prompt every request has) is not worth a queue, or it would pull the
    whole workload onto one replica."""

    def __init__(
        self,
        min_match: float = 0.5,
        slack: int = 2,
        max_kv_usage: float = 0.95,
        engine_block_tokens: int = 16,
    ) -> None:
        if slack < 0 or not 0 < max_kv_usage <= 1 or not 0 <= min_match <= 1:
            raise InputError(
                "need 0 <= min_match <= 1, slack >= 0 and 0 < max_kv_usage <= 1, got "
                f"{min_match}, {slack} and {max_kv_usage}",
                field="router.params",
            )
        self.min_match, self.slack, self.max_kv_usage = min_match, slack, max_kv_usage
        self.index = PrefixIndex(engine_block_tokens)

    def pick(self, request: RequestView, replicas: list[ReplicaView], role: str) -> ReplicaView:
        least = least_loaded(replicas)
        if role == "decode":  # the prompt was computed at the prefill end
            return least
        depth = self.index.match(request.prefix_blocks, replicas)
        chosen = least
        ids = request.prefix_blocks
        if depth and max(depth.values()) >= self.min_match * len(ids):
            best = max(depth.values())
            holders = [r for r in replicas if depth.get(r.id) == best]
            top = least_loaded(holders)
            busy = top.running + top.waiting > least.running + least.waiting + self.slack
            if not busy and top.kv_usage <= self.max_kv_usage:
                chosen = top
        self.index.record(chosen, request.prefix_blocks, request.block_tokens)
        return chosen


def _hash(key: str) -> int:
    """A hash stable across processes (Python's str hash is salted per process)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


class HashRing:
    """Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam,
    2018): a key goes to the first replica clockwise of its hash whose load is below
    ``load_factor`` x the mean (after adding it), so no replica takes more than its
    share while keys still stick to their replica as replicas come and go."""

    def __init__(self, vnodes: int = 100, load_factor: float = 1.25) -> None:
        if vnodes < 1 or load_factor < 1:
            raise InputError(
                f"need vnodes >= 1 and load_factor >= 1, got {vnodes} and {load_factor}",
                field="router.params",
            )
        self.vnodes, self.load_factor = vnodes, load_factor
        self._members: tuple[str, ...] = ()
        self._points: list[int] = []
        self._owners: list[str] = []

    def _build(self, members: tuple[str, ...]) -> None:
        ring = sorted((_hash(f"{m}#{v}"), m) for m in members for v in range(self.vnodes))
        self._points = [p for p, _ in ring]
        self._owners = [m for _, m in ring]
        self._members = members

    def home(self, key: str, replicas: list[ReplicaView]) -> ReplicaView:
        members = tuple(r.id for r in replicas)
        if members != self._members:
            self._build(members)
        by_id = {r.id: r for r in replicas}
        total = sum(r.running + r.waiting for r in replicas) + 1
        cap = math.ceil(self.load_factor * total / len(replicas))
        start = bisect.bisect(self._points, _hash(key))
        seen: set[str] = set()
        n = len(self._owners)
        for k in range(n):
            owner = self._owners[(start + k) % n]
            if owner in seen:
                continue
            seen.add(owner)
            r = by_id[owner]
            if r.running + r.waiting < cap:
                return r
            if len(seen) == len(members):
                break
        return least_loaded(replicas)


@register("session_affinity")
class SessionAffinity(Balancer):
    """Turns of a session to the same replica (their earlier turns are cached there),
    by consistent hashing with bounded load; requests outside a session go to the
    least loaded replica."""

    def __init__(self, vnodes: int = 100, load_factor: float = 1.25) -> None:
        self.ring = HashRing(vnodes, load_factor)

    def pick(self, request: RequestView, replicas: list[ReplicaView], role: str) -> ReplicaView:
        if request.session_id is None or role == "decode":  # prompts cache at the prefill end
            return least_loaded(replicas)
        return self.ring.home(f"session-{request.session_id}", replicas)
