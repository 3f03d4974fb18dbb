"""The twin engine: the simulator's replica run in real time.

It is the same `Replica` the simulator steps (continuous batching, chunked
prefill, paged KV blocks, prefix cache, preemption), driven by the wall clock
instead of as fast as possible, and it streams placeholder tokens at the times
the performance model gives each step. It lets the whole live path (ingress,
router, autoscaler, load generator) run on machines without a GPU, and a live run
be set against a simulated one. It is a labelled feature (``engine: twin`` in a
pool spec), never a silent stand-in for vLLM; its energy is the power model's,
reported as estimated.

Everything runs on one asyncio loop: requests are submitted from coroutines, and
a driver task steps the simpy environment when the wall clock reaches its next
event (``speed`` > 1 runs the clock faster, for tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import simpy

from wrpfleet.pool.spec import PoolSpec
from wrpfleet.sim.engine import Replica, Seq
from wrpfleet.sim.fleet import replica_engine
from wrpfleet.types import ReplicaView, Request


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One streamed token (``index`` from 1), or the end of a request."""

    index: int
    t: float  # engine time of the step that made it (seconds since the engine started)
    finished: bool = False
    error: str | None = None  # why the request was refused or failed, if it was
    status: int = 400  # the HTTP status of that: 400 refused, 502/503 the fleet failed


class TwinEngine:
    def __init__(
        self,
        pool: PoolSpec,
        name: str | None = None,
        speed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.perf, blocks, max_len = replica_engine(pool)
        self.env = simpy.Environment()
        self.replica = Replica(
            self.env,
            name or f"{pool.name}-twin",
            pool.name,
            self.perf,
            pool.engine,
            blocks,
            self._finished,
            fast=False,  # every step an event: tokens stream step by step
            max_model_len=max_len,
        )
        self.replica.on_tokens = self._tokens
        self.speed, self.clock = speed, clock
        self._t0 = clock()
        self._streams: dict[int, asyncio.Queue[TokenEvent]] = {}
        self._wake: asyncio.Event | None = None
        self._driver: asyncio.Task | None = None

    # ------------------------------------------------------------------ clock

    def now(self) -> float:
        """Engine time: wall seconds since the engine started, times ``speed``."""
        return (self.clock() - self._t0) * self.speed

    def _catch_up(self) -> None:
        """Run every event due by now, and bring the engine's clock to now."""
        now = self.now()
        if now > self.env.now:
            self.env.run(until=now)

    async def _drive(self) -> None:
        assert self._wake is not None
        while True:
            self._catch_up()
            nxt = self.env.peek()
            self._wake.clear()
            wait = None if math.isinf(nxt) else max(0.0, (nxt - self.now()) / self.speed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _ensure_running(self) -> None:
        if self._driver is None or self._driver.done():
            self._wake = asyncio.Event()
            self._driver = asyncio.get_running_loop().create_task(self._drive())

    async def close(self) -> None:
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
            self._driver = None

    # ------------------------------------------------------------------ requests

    async def generate(self, request: Request) -> AsyncIterator[TokenEvent]:
        """Submit a request now and stream its tokens as the engine makes them."""
        self._ensure_running()
        if request.id in self._streams:
            raise ValueError(f"request id {request.id} is already in flight")
        queue: asyncio.Queue[TokenEvent] = asyncio.Queue()
        self._streams[request.id] = queue
        self._catch_up()
        self.replica.submit(request)
        self._wake.set()
        try:
            while True:
                event = await queue.get()
                yield event
                if event.finished:
                    return
        finally:
            self._streams.pop(request.id, None)

    def _tokens(self, seqs: list[Seq], now: float) -> None:
        for s in seqs:
            queue = self._streams.get(s.req.id)
            if queue is not None:
                queue.put_nowait(TokenEvent(self.replica.generated(s), now))

    def _finished(self, seq: Seq, replica: Replica) -> None:
        queue = self._streams.get(seq.req.id)
        if queue is not None:
            queue.put_nowait(
                TokenEvent(seq.generated, self.env.now, finished=True, error=seq.rejected)
            )

    # ------------------------------------------------------------------ state

    def view(self) -> ReplicaView:
        """Running and waiting requests and KV blocks now, as vLLM's metrics give them."""
        self._catch_up()
        return self.replica.view()

    def energy_j(self) -> float:
        """Energy so far, estimated from the power model (a twin has no GPU to measure)."""
        self._catch_up()
        st = self.replica.stats
        return st.active_energy_j + (self.env.now - st.busy_s) * self.perf.idle_power_w
