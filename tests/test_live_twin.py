"""The live path on the twin engine: an OpenAI-compatible server started by the test
on the loopback, `wrpfleet bench` replaying a workload against it, and the same
workload simulated: they must agree."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import httpx
import pytest
from conftest import REPO, wrpfleet

POOLS = """pools:
  - name: p
    model: Llama-3.1-8B
    gpu: H100-SXM
    engine: {max_model_len: 8192}
"""
WORKLOAD = """kind: synthetic
name: live_check
arrival: {process: poisson, rate: 2.0}
classes:
  - {input: {dist: uniform, low: 5000, high: 7000}, output: 40}
num_requests: 24
duration_s: null
seed: 2
"""


@pytest.fixture
def twin(tmp_path):
    """A twin replica serving on a free loopback port, stopped after the test."""
    pools = tmp_path / "pools.yaml"
    pools.write_text(POOLS)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "wrpfleet.cli", "twin", str(pools), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail(f"twin did not start: {proc.stderr.read() if proc.poll() else ''}")
        yield url, pools
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_twin_speaks_openai_and_refuses_bad_requests(twin):
    url, _ = twin
    models = httpx.get(f"{url}/v1/models").json()
    assert models["data"][0]["id"] == "Llama-3.1-8B"
    r = httpx.post(f"{url}/v1/completions", json={"prompt": "a b c", "max_tokens": 4}).json()
    assert r["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert r["choices"][0]["text"] == " t1 t2 t3 t4"
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=chat) as resp:
        lines = [x for x in resp.iter_lines() if x.startswith("data: ")]
    assert lines[-1] == "data: [DONE]" and len(lines) == 5  # 3 tokens, the end, [DONE]
    cases = [
        (b"{bad", 400, "not JSON"),
        (json.dumps({"model": "gpt-9", "prompt": "a"}).encode(), 404, "does not exist"),
        (json.dumps({"prompt": "a", "max_tokens": 0}).encode(), 400, "max_tokens"),
        (json.dumps({"prompt": "w " * 9000, "max_tokens": 1}).encode(), 400, "max_model_len"),
    ]
    for body, status, words in cases:
        resp = httpx.post(f"{url}/v1/completions", content=body)
        assert resp.status_code == status
        assert words in resp.json()["error"]["message"]
    metrics = httpx.get(f"{url}/metrics").text
    assert "vllm:num_requests_running" in metrics and 'estimated="true"' in metrics
    # Still serving after the bad requests.
    assert (
        httpx.post(f"{url}/v1/completions", json={"prompt": "a", "max_tokens": 1}).status_code
        == 200
    )


def test_bench_against_the_twin_agrees_with_the_simulator(twin, tmp_path):
    url, pools = twin
    workload = tmp_path / "workload.yaml"
    workload.write_text(WORKLOAD)
    live = wrpfleet("bench", workload, "--endpoint", url, "--out", tmp_path / "live", "--json")
    assert live.returncode == 0, live.stderr
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"name: live_check\nworkload: {workload}\npools: {pools}\n")
    sim = wrpfleet("simulate", scenario, "--out", tmp_path / "sim", "--json")
    assert sim.returncode == 0, sim.stderr
    a, b = json.loads(sim.stdout), json.loads(live.stdout)
    assert b["completed"] == b["requests_in"] == 24
    for key in ("ttft_p50_s", "tpot_p50_s"):
        assert b[key] == pytest.approx(a[key], rel=0.10), (key, a[key], b[key])
    # The same comparison by `wrpfleet report`, live relative to simulated.
    rep = wrpfleet("report", tmp_path / "sim", tmp_path / "live", "--out", tmp_path, "--json")
    assert rep.returncode == 0, rep.stderr
    rel = json.loads(rep.stdout)
    for key in ("ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99", "e2e_p50"):
        assert f"{key}_rel" in rel
    assert rel["ttft_p50_rel"] == pytest.approx(b["ttft_p50_s"] / a["ttft_p50_s"] - 1)
    assert abs(rel["tpot_p50_rel"]) < 0.10
    assert (tmp_path / "report.html").is_file()
    bad = wrpfleet("report", tmp_path)
    assert bad.returncode == 2 and "not a run folder" in bad.stderr
