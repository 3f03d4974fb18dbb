"""Replay a workload against any OpenAI-compatible endpoint: ``wrpfleet bench``.

Requests go out at the workload's timestamps (open loop); a request that follows
another (a session's next turn, a closed-loop user) goes ``think_s`` after that
one's answer ends, as in the simulator. Each is a streamed ``/v1/completions``
call with ``max_tokens`` (and vLLM's ``ignore_eos``) set to the request's output
length, its prompt written by `wrpfleet.serve.text`. TTFT, TPOT and end-to-end
are measured from the stream, and the table has the columns of ``wrpfleet
simulate``'s ``requests.parquet``, so `wrpfleet report` can set the two side by
side.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd

from wrpfleet.errors import InputError
from wrpfleet.serve.text import prompt_for
from wrpfleet.sim.metrics import latency_figures
from wrpfleet.types import Request


async def _one(client: httpx.AsyncClient, model: str, req: Request, start: float) -> dict[str, Any]:
    sent = time.monotonic()
    row: dict[str, Any] = {
        "id": req.id,
        "arrival_s": req.arrival_s,
        "released_s": sent - start,
        "input_tokens": req.input_tokens,
        "output_tokens": req.output_tokens,
        "category": req.category,
        "slo_class": req.slo_class,
        "session_id": req.session_id,
        "rejected": None,
    }
    body = {
        "model": model,
        "prompt": prompt_for(req),
        "max_tokens": req.output_tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    times: list[float] = []
    try:
        async with client.stream("POST", "/v1/completions", json=body) as resp:
            if resp.status_code != 200:
                text = (await resp.aread()).decode(errors="replace")
                row["rejected"] = f"HTTP {resp.status_code}: {text[:200]}"
                return row
            async for line in resp.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("choices") and chunk["choices"][0].get("text"):
                    times.append(time.monotonic())
                if chunk.get("usage"):
                    row["output_tokens"] = chunk["usage"].get("completion_tokens", len(times))
    except (httpx.HTTPError, json.JSONDecodeError) as e:
        row["rejected"] = f"{type(e).__name__}: {e}"
        return row
    end = time.monotonic()
    if not times:
        row["rejected"] = "no tokens in the stream"
        return row
    row["ttft_s"] = times[0] - sent
    row["e2e_s"] = end - sent
    row["tpot_s"] = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else np.nan
    return row


async def bench(
    endpoint: str,
    requests: Iterator[Request],
    model: str | None = None,
    duration_s: float | None = None,
    max_requests: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Replay ``requests``; the per-request table and its summary."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=endpoint, timeout=600.0, limits=limits) as client:
        if model is None:
            try:
                listing = (await client.get("/v1/models")).json()
                model = listing["data"][0]["id"]
            except (httpx.HTTPError, KeyError, IndexError, ValueError) as e:
                raise InputError(
                    f"cannot list the endpoint's models: {e}", field="--endpoint"
                ) from None
        start = time.monotonic()
        done: dict[int, asyncio.Event] = {}
        ended: dict[int, float] = {}
        rows: list[dict[str, Any]] = []
        tasks: list[asyncio.Task] = []
        issued = 0

        async def run(req: Request) -> None:
            if req.follows is not None and req.follows in done:
                await done[req.follows].wait()
                delay = ended[req.follows] + req.think_s - (time.monotonic() - start)
            else:
                delay = req.arrival_s - (time.monotonic() - start)
            if delay > 0:
                await asyncio.sleep(delay)
            row = await _one(client, model, req, start)
            rows.append(row)
            ended[req.id] = time.monotonic() - start
            done[req.id].set()
            if on_progress:
                on_progress(len(rows), issued)

        for req in requests:
            if max_requests is not None and issued >= max_requests:
                break
            if duration_s is not None and req.arrival_s >= duration_s:
                break
            done[req.id] = asyncio.Event()
            tasks.append(asyncio.create_task(run(req)))
            issued += 1
            await asyncio.sleep(0)  # let due requests go out while the rest are read
        await asyncio.gather(*tasks)
        wall = time.monotonic() - start
    df = pd.DataFrame(rows).sort_values("id").reset_index(drop=True)
    ok = df[df["rejected"].isna()] if len(df) else df
    summary: dict[str, Any] = {
        "endpoint": endpoint,
        "model": model,
        "requests_in": issued,
        "completed": len(ok),
        "rejected": int(df["rejected"].notna().sum()) if len(df) else 0,
        "unfinished": issued - len(df),
        "duration_s": wall,
        **latency_figures(ok),
        "throughput_tok_s": float(ok["output_tokens"].sum()) / wall if len(ok) else 0.0,
        "throughput_req_s": len(ok) / wall,
    }
    return df, summary
