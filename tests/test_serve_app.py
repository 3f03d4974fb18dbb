"""The Ray Serve application over twin replicas: the scenario's router object picks
pool and replica live (Ray with explicit num_cpus, no dashboard, loopback only)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time

import httpx
import pytest
import ray
from conftest import REPO, wrpfleet
from ray import serve

from wrpfleet.config import Scenario, load_scenario
from wrpfleet.serve.app import build_app


@pytest.fixture(scope="module")
def base_url():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        scenario = load_scenario(REPO / "sim" / "context_pools.yaml")
        serve.run(build_app(scenario), blocking=False)
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


def records(url: str) -> dict[int, dict]:
    return {r["id"]: r for r in httpx.get(f"{url}/v1/wrpfleet/records").json()}


def test_context_length_router_places_requests_live(base_url):
    short = httpx.post(
        f"{base_url}/v1/completions", json={"prompt": "a " * 200, "max_tokens": 4}, timeout=60
    )
    assert short.status_code == 200 and short.json()["usage"]["completion_tokens"] == 4
    with httpx.stream(
        "POST",
        f"{base_url}/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": "w " * 6000}],
            "max_tokens": 3,
            "stream": True,
        },
        timeout=60,
    ) as resp:
        lines = [x for x in resp.iter_lines() if x.startswith("data: ")]
    assert lines[-1] == "data: [DONE]" and len(lines) == 5
    recs = sorted(records(base_url).values(), key=lambda r: r["id"])
    assert [r["pool"] for r in recs[-2:]] == ["short", "long"]
    for r in recs:  # the replica the policy chose is the one that served
        assert r["replica"] == r["chosen"] and r["error"] is None
        assert r["energy_j"] > 0 and r["energy_source"] == "estimated"  # twins: never measured
    metrics = httpx.get(f"{base_url}/metrics").text
    assert 'wrpfleet:energy_joules_total{pool="long"' in metrics
    assert 'source="estimated"' in metrics and 'source="nvml"' not in metrics


def test_a_burst_spreads_over_replicas_despite_stale_stats(base_url):
    """Routing stats refresh every 0.5 s; the router's own in-flight counts keep a
    burst from piling onto one replica."""

    async def burst():
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            body = {"prompt": "b " * 100, "max_tokens": 40}
            return await asyncio.gather(
                *(client.post("/v1/completions", json=body) for _ in range(9))
            )

    before = set(records(base_url))
    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses)
    new = [r for i, r in records(base_url).items() if i not in before]
    served = {r["replica"] for r in new}
    assert {r["pool"] for r in new} == {"short"}
    assert len(served) == 3, served  # least_requests over the three short replicas


def test_bad_requests_get_openai_errors_and_the_app_keeps_serving(base_url):
    cases = [
        (b"{oops", 400, "not JSON"),
        (b'{"model": "gpt-9", "prompt": "a"}', 404, "does not exist"),
        (b'{"prompt": "a", "max_tokens": -1}', 400, "max_tokens"),
    ]
    for body, status, words in cases:
        resp = httpx.post(f"{base_url}/v1/completions", content=body, timeout=30)
        assert resp.status_code == status and words in resp.json()["error"]["message"]
    ok = httpx.post(f"{base_url}/v1/completions", json={"prompt": "a", "max_tokens": 1}, timeout=30)
    assert ok.status_code == 200


def test_with_keys_a_request_without_one_gets_401_and_reaches_no_replica(base_url, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("s3cret\n")
    guarded = build_app(
        load_scenario(REPO / "sim" / "twin_check.yaml"),
        guard={"api_keys_file": str(keys), "rate_per_s": 0.05, "burst": 1},
    )
    serve.run(guarded, name="guarded", route_prefix="/g", blocking=False)
    url = f"{base_url}/g"
    body = {"prompt": "a b", "max_tokens": 2}
    anonymous = httpx.post(f"{url}/v1/completions", json=body, timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "authentication_error"
    assert httpx.get(f"{url}/v1/wrpfleet/records").json() == []  # no replica was asked
    auth = {"Authorization": "Bearer s3cret"}
    assert (
        httpx.post(f"{url}/v1/completions", json=body, headers=auth, timeout=30).status_code == 200
    )
    limited = httpx.post(f"{url}/v1/completions", json=body, headers=auth, timeout=30)
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    serve.delete("guarded")


def test_a_replica_killed_mid_stream_fails_its_requests_cleanly(base_url):
    """Kill a replica while it streams: its requests end with an error event (or
    complete), none hangs, every request is in the records, and the app serves on."""
    app = build_app(load_scenario(REPO / "sim" / "twin_check.yaml"))
    serve.run(app, name="kill", route_prefix="/k", blocking=False)
    url = f"{base_url}/k"

    async def stream(client: httpx.AsyncClient, i: int) -> tuple[int, list[str]]:
        body = {"prompt": f"p{i} " * 50, "max_tokens": 600, "stream": True}
        async with client.stream("POST", "/v1/completions", json=body) as resp:
            return resp.status_code, [x async for x in resp.aiter_lines() if x.startswith("data: ")]

    async def main():
        async with httpx.AsyncClient(base_url=url, timeout=90) as client:
            tasks = [asyncio.create_task(stream(client, i)) for i in range(4)]
            await asyncio.sleep(2.0)  # streaming by now
            fleet = (await client.get("/v1/wrpfleet/fleet")).json()
            served = {r["id"] for r in fleet["pools"][0]["replicas"]}
            (uid,) = served  # twin_check has one replica
            ray.kill(ray.get_actor(f"SERVE_REPLICA::kill#pool-h100#{uid}", namespace="serve"))
            return await asyncio.wait_for(asyncio.gather(*tasks), 60)  # none hangs

    results = asyncio.run(main())
    for status, lines in results:
        assert status == 200 and lines[-1] == "data: [DONE]"
        ended = json.loads(lines[-2][6:])
        assert "error" in ended or ended["choices"][0]["finish_reason"] == "length"
    assert any("error" in json.loads(lines[-2][6:]) for _, lines in results)
    recs = httpx.get(f"{url}/v1/wrpfleet/records").json()
    assert len(recs) == 4 and all(r["error"] for r in recs)
    # Serve replaces the replica; the app serves again.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ok = httpx.post(f"{url}/v1/completions", json={"prompt": "a", "max_tokens": 2}, timeout=30)
        if ok.status_code == 200:
            break
        assert ok.status_code in (502, 503) and "error" in ok.json()
        time.sleep(1)
    assert ok.status_code == 200
    serve.delete("kill")


def test_the_serve_config_names_a_builder_that_builds(monkeypatch):
    """serve_app/twin.yaml: its import path resolves and builds the application."""
    import importlib

    import yaml

    config = yaml.safe_load((REPO / "serve_app" / "twin.yaml").read_text())
    (app,) = config["applications"]
    module, attr = app["import_path"].split(":")
    builder = getattr(importlib.import_module(module), attr)
    monkeypatch.chdir(REPO)  # serve run runs from the repository root
    built = builder(app["args"])
    assert type(built).__name__ == "Application"
    assert config["http_options"]["host"] == "127.0.0.1"


def test_bench_through_the_serve_app_agrees_with_the_simulator(base_url, tmp_path):
    """The same workload benched through the app (router, handles, twin replicas) and
    simulated on the same scenario: p50 TPOT within 10%; p50 TTFT later by Serve's
    own hops, which the simulator does not model, bounded."""
    workload = tmp_path / "w.yaml"
    workload.write_text(
        "kind: synthetic\nname: serve_check\narrival: {process: poisson, rate: 2.0}\n"
        "classes:\n  - {input: {dist: uniform, low: 5000, high: 7000}, output: 40}\n"
        "num_requests: 24\nduration_s: null\nseed: 4\n"
    )

    def summary(*args) -> dict:
        run = wrpfleet(*args, "--json", timeout=180)
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)

    live = summary("bench", workload, "--endpoint", base_url, "--out", tmp_path / "live")
    sim = summary(
        "simulate", "sim/context_pools.yaml", "--workload", workload, "--out", tmp_path / "sim"
    )
    assert live["completed"] == sim["completed"] == 24
    assert live["tpot_p50_s"] == pytest.approx(sim["tpot_p50_s"], rel=0.10)
    # TTFT pays Serve's hops (proxy, ingress, handle routing with its queue probe):
    # a fixed overhead, measured, bounded here, not modelled by the simulator.
    assert 0 <= live["ttft_p50_s"] - sim["ttft_p50_s"] < 0.06


def test_prefix_affinity_keeps_a_sessions_turns_where_its_prefix_is(base_url):
    """Live, with the scenario's prefix_affinity router: a session's next turn goes to
    the replica that served (and caches) its previous turns, although that replica is
    now the busier one and a load balancer would send it elsewhere."""
    from wrpfleet.schema import validate

    scenario = validate(
        Scenario,
        {
            "name": "affinity",
            "workload": {
                "arrival": {"process": "poisson", "rate": 1.0},
                "classes": [{"input": 100, "output": 10}],
                "num_requests": 1,
            },
            "pools": [{"name": "p", "model": "Llama-3.1-8B", "gpu": "H100-SXM", "replicas": 2}],
            "router": "prefix_affinity",
        },
    )
    serve.run(build_app(scenario), name="affinity", route_prefix="/a", blocking=False)
    url = f"{base_url}/a"
    turn1 = " ".join(f"s{i}" for i in range(64))  # four 16-word blocks
    first = httpx.post(f"{url}/v1/completions", json={"prompt": turn1, "max_tokens": 4}, timeout=60)
    assert first.status_code == 200

    async def main():
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            # A long request sharing the session's opening keeps its replica busy...
            busy = asyncio.create_task(
                client.post("/v1/completions", json={"prompt": turn1 + " x", "max_tokens": 1500})
            )
            await asyncio.sleep(1.0)
            # ... and the next turn (the opening and 32 more words) still goes there.
            turn2 = turn1 + " " + " ".join(f"t{i}" for i in range(32))
            reply = await client.post("/v1/completions", json={"prompt": turn2, "max_tokens": 4})
            await busy
            return reply

    assert asyncio.run(main()).status_code == 200
    recs = sorted(httpx.get(f"{url}/v1/wrpfleet/records").json(), key=lambda r: r["id"])
    assert len(recs) == 3
    assert recs[0]["replica"] == recs[1]["replica"] == recs[2]["replica"]
    serve.delete("affinity")
