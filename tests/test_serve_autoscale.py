"""Ray Serve's autoscaling hook driving the simulator's autoscaler object: a burst
adds replicas up to the pool's maximum and they go once it ends (twin replicas;
Ray with explicit num_cpus, no dashboard, loopback only)."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import httpx
import ray
from ray import serve

from wrpfleet.config import Scenario
from wrpfleet.schema import validate
from wrpfleet.serve.app import build_app

SCENARIO = {
    "name": "scale",
    "workload": {
        "arrival": {"process": "poisson", "rate": 1.0},
        "classes": [{"input": 100, "output": 10}],
        "num_requests": 1,
    },
    "pools": [
        {
            "name": "p",
            "model": "Llama-3.1-8B",
            "gpu": "H100-SXM",
            "replicas": 1,
            "min_replicas": 1,
            "max_replicas": 3,
            "engine": {"max_num_seqs": 4},
        }
    ],
    "router": "least_requests",
    "autoscaler": {
        "policy": "target_ongoing",
        "interval_s": 1,
        "params": {"target": 2, "upscale_delay_s": 0, "downscale_delay_s": 3},
    },
}


def test_a_burst_scales_the_pool_up_to_its_max_and_back():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Replicas push their autoscaling stats every second, not Serve's default ten.
    env = {"RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1"}
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env}
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(validate(Scenario, SCENARIO)), blocking=False)

        def running() -> int:
            status = serve.status().applications["default"].deployments["pool-p"]
            return status.replica_states.get("RUNNING", 0)

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=180) as c:
                body = {"prompt": "a " * 100, "max_tokens": 1500}
                rs = await asyncio.gather(
                    *(c.post("/v1/completions", json=body) for _ in range(12))
                )
                return [r.status_code for r in rs]

        async def watch() -> tuple[list[int], list[int]]:
            task = asyncio.create_task(burst())
            seen = []
            while not task.done():
                await asyncio.sleep(0.5)
                seen.append(running())
            return await task, seen

        codes, seen = asyncio.run(watch())
        assert codes == [200] * 12
        assert max(seen) == 3 and min(seen) >= 1  # up to max_replicas, never beyond
        deadline = time.monotonic() + 60
        while running() > 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert running() == 1  # back to min_replicas once idle
    finally:
        serve.shutdown()
        ray.shutdown()
