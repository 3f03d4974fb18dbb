"""The twin engine: the simulator's replica in real time, streaming tokens."""

from __future__ import annotations

import asyncio
import time

import pytest

from wrpfleet.pool.perf import Batch
from wrpfleet.pool.spec import PoolSpec
from wrpfleet.serve.twin import TokenEvent, TwinEngine
from wrpfleet.types import Request

POOL = PoolSpec(name="p", model="Llama-3.1-8B", gpu="H100-SXM", engine={"max_model_len": 4096})
SPEED = 10.0  # the engine's clock runs ten times the wall clock: tests stay short


async def collect(engine: TwinEngine, req: Request) -> list[tuple[TokenEvent, float]]:
    """Each event with the wall-clock engine time it arrived at."""
    return [(ev, engine.now()) async for ev in engine.generate(req)]


def test_a_request_alone_streams_at_the_performance_models_times():
    async def main():
        engine = TwinEngine(POOL, speed=SPEED)
        events = await collect(engine, Request(1, 0.0, 1000, 20))
        await engine.close()
        return engine, events

    engine, events = asyncio.run(main())
    tokens = [ev for ev, _ in events if not ev.finished]
    assert [ev.index for ev in tokens] == list(range(1, 21))
    assert events[-1][0].finished and events[-1][0].error is None
    p = engine.perf
    prefill = float(
        p.iteration_time(Batch(prefill_tokens=1000, prefill_seqs=1, prefill_attn=1000 * 1001 / 2))
    )
    assert 0 < tokens[0].t - prefill < 0.5 * SPEED  # submitted when the caller asked
    # Each token at the end of its step: the prefill, then decodes at a growing context.
    expected = tokens[0].t
    for k, ev in enumerate(tokens[1:]):
        expected += float(p.iteration_time(Batch(decode_seqs=1, decode_ctx=1001 + k)))
        assert ev.t == pytest.approx(expected, rel=1e-9)
    # No token reaches the caller before its engine time; none lags by much.
    for ev, seen in events:
        assert seen >= ev.t - 1e-9
        assert seen - ev.t < 0.5 * SPEED  # half a second of wall clock at most


def test_concurrent_requests_share_steps():
    async def main():
        engine = TwinEngine(POOL, speed=SPEED)
        a, b = await asyncio.gather(
            collect(engine, Request(1, 0.0, 300, 30)), collect(engine, Request(2, 0.0, 300, 30))
        )
        view = engine.view()
        await engine.close()
        return a, b, view

    a, b, view = asyncio.run(main())
    ta = [ev.t for ev, _ in a if not ev.finished]
    tb = [ev.t for ev, _ in b if not ev.finished]
    assert len(ta) == len(tb) == 30
    # Continuous batching: after both are admitted, their tokens come from the same steps.
    shared = set(ta) & set(tb)
    assert len(shared) >= 25
    assert view.running == view.waiting == 0 and view.kv_used_blocks == 0


def test_a_prompt_beyond_max_model_len_is_refused_at_once():
    async def main():
        engine = TwinEngine(POOL, speed=SPEED)
        start = time.monotonic()
        events = [ev async for ev in engine.generate(Request(1, 0.0, 5000, 10))]
        await engine.close()
        return events, time.monotonic() - start

    events, wall = asyncio.run(main())
    assert len(events) == 1 and events[0].finished
    assert "exceeds max_model_len 4096" in events[0].error
    assert wall < 1.0


def test_energy_is_the_power_models_and_grows_with_work():
    async def main():
        engine = TwinEngine(POOL, speed=SPEED)
        idle_before = engine.energy_j()
        await collect(engine, Request(1, 0.0, 500, 50))
        after = engine.energy_j()
        await engine.close()
        return engine, idle_before, after

    engine, before, after = asyncio.run(main())
    st = engine.replica.stats
    assert st.steps == 50 and st.active_energy_j > 0
    assert after > before + st.active_energy_j * 0.99
