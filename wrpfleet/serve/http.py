"""The OpenAI-compatible HTTP layer over a backend: one twin engine (``wrpfleet
twin POOLS``) or the Ray Serve ingress routing over pools (`wrpfleet.serve.app`).

``/v1/completions`` and ``/v1/chat/completions`` (streamed as server-sent events
or whole), ``/v1/models``, ``/health`` and Prometheus ``/metrics`` with vLLM's
metric names (the energy gauge labelled ``estimated``). Errors are OpenAI-style
JSON with the matching status, never a dropped connection; a `Guard` checks API
keys, sizes and rate limits first. Prompts are read as
words (`wrpfleet.serve.text`); ``max_tokens`` tokens are generated, as vLLM does
with ``ignore_eos``.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from wrpfleet.serve.guard import Guard, Refusal
from wrpfleet.serve.text import request_from_text
from wrpfleet.serve.twin import TokenEvent, TwinEngine
from wrpfleet.types import Request as WorkRequest


def error(
    status: int,
    message: str,
    kind: str = "invalid_request_error",
    param: str | None = None,
    headers: dict[str, str] | None = None,
):
    """An OpenAI-style error response."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def refused(r: Refusal) -> JSONResponse:
    return error(r.status, r.message, r.kind, headers=Guard.retry_after(r))


class Backend(Protocol):
    """What serves the requests behind the OpenAI layer: one twin engine, or the Ray
    Serve ingress routing over pools of replicas."""

    models: list[str]

    def generate(self, request: WorkRequest) -> AsyncIterator[TokenEvent]: ...

    async def metrics(self) -> list[str]: ...


class TwinBackend:
    """One twin engine as the whole backend (``wrpfleet twin``)."""

    def __init__(self, engine: TwinEngine, model: str) -> None:
        self.engine, self.models = engine, [model]

    def generate(self, request: WorkRequest) -> AsyncIterator[TokenEvent]:
        return self.engine.generate(request)

    async def metrics(self) -> list[str]:
        v = self.engine.view()
        labels = f'model_name="{self.models[0]}",engine="twin"'
        return [
            f"vllm:num_requests_running{{{labels}}} {v.running}",
            f"vllm:num_requests_waiting{{{labels}}} {v.waiting}",
            f"vllm:gpu_cache_usage_perc{{{labels}}} {v.kv_usage}",
            f'wrpfleet:energy_joules_total{{{labels},estimated="true"}} {self.engine.energy_j()}',
        ]


def create_app(backend: Backend, guard: Guard | None = None) -> FastAPI:
    app = FastAPI(title="wrpfleet", docs_url=None, redoc_url=None)
    ids = itertools.count(1)
    guard = guard or Guard()
    model = backend.models[0]

    async def body_of(http: Request) -> dict[str, Any] | Response:
        raw = await http.body()
        client = http.client.host if http.client else "unknown"
        refusal = guard.admit(http.headers.get("authorization"), client, len(raw))
        if refusal is not None:
            return refused(refusal)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return error(400, f"body is not JSON: {e}")
        if not isinstance(body, dict):
            return error(400, "body must be a JSON object")
        if body.get("model", model) not in backend.models:
            return error(
                404, f"model {body.get('model')!r} does not exist", "not_found_error", "model"
            )
        max_tokens = body.get("max_tokens", 16)
        if not isinstance(max_tokens, int) or max_tokens < 1:
            return error(400, "max_tokens must be a positive integer", param="max_tokens")
        return body

    async def run(http: Request, chat: bool) -> Response:
        body = await body_of(http)
        if isinstance(body, Response):
            return body
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return error(400, "messages must be a non-empty list", param="messages")
            text = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        else:
            text = body.get("prompt")
            if not isinstance(text, str):
                return error(400, "prompt must be a string", param="prompt")
        rid = next(ids)
        req = request_from_text(rid, text, body.get("max_tokens", 16))
        refusal = guard.check_prompt(req.input_tokens)
        if refusal is not None:
            return refused(refusal)
        events = backend.generate(req)
        first = await anext(events)
        if first.error is not None:
            await events.aclose()
            if first.status >= 500:
                return error(first.status, first.error, "server_error")
            return error(first.status, first.error, param="prompt")
        name = f"{'chatcmpl' if chat else 'cmpl'}-{rid}"
        created = int(time.time())
        kind = "chat.completion" if chat else "text_completion"

        def chunk(token: str | None, finish: str | None) -> dict[str, Any]:
            if chat:
                delta = {"content": token} if token is not None else {}
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
                return {
                    "id": name,
                    "object": f"{kind}.chunk",
                    "created": created,
                    "model": model,
                    "choices": [choice],
                }
            choice = {"index": 0, "text": token or "", "finish_reason": finish}
            return {
                "id": name,
                "object": kind,
                "created": created,
                "model": model,
                "choices": [choice],
            }

        failure: list[str] = []  # why the stream broke off, if it did

        async def tokens() -> AsyncIterator[int]:
            event = first
            while True:
                if event.finished:
                    if event.error is not None:
                        failure.append(event.error)
                    return
                yield event.index
                event = await anext(events)

        usage = {
            "prompt_tokens": req.input_tokens,
            "completion_tokens": req.output_tokens,
            "total_tokens": req.input_tokens + req.output_tokens,
        }
        if body.get("stream"):

            async def sse() -> AsyncIterator[str]:
                async for i in tokens():
                    yield f"data: {json.dumps(chunk(f' t{i}', None))}\n\n"
                if failure:  # the stream has started: the error goes in it, then it ends
                    err = {"message": failure[0], "type": "server_error", "code": 502}
                    yield f"data: {json.dumps({'error': err})}\n\n"
                else:
                    yield f"data: {json.dumps({**chunk(None, 'length'), 'usage': usage})}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(sse(), media_type="text/event-stream")
        text_out = "".join([f" t{i}" async for i in tokens()])
        if failure:
            return error(502, failure[0], "server_error")
        if chat:
            message = {"role": "assistant", "content": text_out}
            choice = {"index": 0, "message": message, "finish_reason": "length"}
        else:
            choice = {"index": 0, "text": text_out, "finish_reason": "length"}
        return JSONResponse(
            {
                "id": name,
                "object": kind,
                "created": created,
                "model": model,
                "choices": [choice],
                "usage": usage,
            }
        )

    @app.post("/v1/completions")
    async def completions(http: Request) -> Response:
        return await run(http, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(http: Request) -> Response:
        return await run(http, chat=True)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        data = [{"id": m, "object": "model", "owned_by": "wrpfleet"} for m in backend.models]
        return {"object": "list", "data": data}

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse("\n".join(await backend.metrics()) + "\n")

    return app
