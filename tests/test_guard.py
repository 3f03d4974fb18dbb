"""API keys, sizes and rate limits: refused before any replica is touched."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from wrpfleet.errors import InputError
from wrpfleet.pool.spec import PoolSpec
from wrpfleet.serve.guard import Guard, read_keys
from wrpfleet.serve.http import TwinBackend, create_app
from wrpfleet.serve.twin import TwinEngine


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_guard_checks_size_then_key_then_rate():
    clock = Clock()
    g = Guard(frozenset({"k1"}), rate_per_s=0.5, burst=2, max_body_bytes=100, clock=clock)
    assert g.admit("Bearer k1", "ip", 101).status == 413
    assert g.admit(None, "ip", 10).status == 401
    assert g.admit("Bearer nope", "ip", 10).status == 401
    assert g.admit("Basic k1", "ip", 10).status == 401
    assert g.admit("Bearer k1", "ip", 10) is None
    assert g.admit("Bearer k1", "ip", 10) is None  # the burst of two
    third = g.admit("Bearer k1", "ip", 10)
    assert third.status == 429 and third.retry_after_s == pytest.approx(2.0)
    assert Guard.retry_after(third) == {"Retry-After": "2"}
    clock.t = 2.0  # one token back at 0.5/s
    assert g.admit("Bearer k1", "ip", 10) is None
    assert g.admit("Bearer k1", "ip", 10).status == 429
    assert g.check_prompt(10) is None
    assert Guard(max_prompt_tokens=5).check_prompt(6).status == 400


def test_without_keys_the_rate_limit_is_per_client_address():
    clock = Clock()
    g = Guard(rate_per_s=1.0, burst=1, clock=clock)
    assert g.admit(None, "a", 1) is None
    assert g.admit(None, "a", 1).status == 429
    assert g.admit(None, "b", 1) is None


def test_keys_from_environment_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KEYS", "a, b,,")
    f = tmp_path / "keys.txt"
    f.write_text("c  # ops\n\n# comment\nd\n")
    assert read_keys("KEYS", f) == {"a", "b", "c", "d"}
    with pytest.raises(InputError, match="cannot read the API keys"):
        read_keys(None, tmp_path / "missing.txt")


def test_the_server_refuses_before_any_replica_is_touched():
    pool = PoolSpec(name="p", model="Llama-3.1-8B", gpu="H100-SXM")

    async def main():
        engine = TwinEngine(pool, speed=10.0)
        guard = Guard(frozenset({"secret"}), rate_per_s=0.01, burst=2, max_prompt_tokens=50)
        app = create_app(TwinBackend(engine, "Llama-3.1-8B"), guard)
        transport = httpx.ASGITransport(app=app)
        body = {"prompt": "a b c", "max_tokens": 2}
        async with httpx.AsyncClient(transport=transport, base_url="http://twin") as client:
            anonymous = await client.post("/v1/completions", json=body)
            wrong = await client.post(
                "/v1/completions", json=body, headers={"Authorization": "Bearer guess"}
            )
            untouched = engine.replica.stats.steps
            auth = {"Authorization": "Bearer secret"}
            long = await client.post(
                "/v1/completions", json={"prompt": "w " * 60, "max_tokens": 1}, headers=auth
            )
            ok = await client.post("/v1/completions", json=body, headers=auth)
            limited = await client.post("/v1/completions", json=body, headers=auth)
        await engine.close()
        return anonymous, wrong, untouched, long, ok, limited, engine

    anonymous, wrong, untouched, long, ok, limited, engine = asyncio.run(main())
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.json()["error"]["type"] == "authentication_error"
    assert untouched == 0  # no step ran for the refused requests
    assert long.status_code == 400 and "over the limit of 50" in long.json()["error"]["message"]
    assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 2
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert engine.replica.stats.steps == 2  # the one admitted request: prefill and a decode
