"""Router decision cost: microseconds per `route` call, per router, at 8, 64 and 512 replicas.

    python benchmarks/router_speed.py [--decisions 2000]

Each router decides on a fleet view of ready replicas with varied loads, for requests
with prompts of 16-token blocks sharing prefixes and sessions, so the affinity
routers' indexes fill as they would in a run. The views are built once: this is
the policy's own cost, not the cost of building views (the simulator keeps those
incrementally).
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from wrpfleet.router import ROUTERS, build_router
from wrpfleet.types import FleetView, PoolView, ReplicaView, RequestView

PARAMS: dict[str, dict[str, Any]] = {
    "context_length": {"routes": [{"pool": "short", "max_input_tokens": 2048}, {"pool": "long"}]},
    "scored": {"scorers": {"prefix": 2, "queue": 1, "kv": 1}},
    "semantic": {
        "rules": [
            {"when": {"input_tokens": {"min": 2049}}, "pool": "long"},
            {"when": {"any": [{"category": "code"}, {"keywords": ["refund"]}]}, "pool": "long"},
        ],
        "default": "short",
    },
}


def fleet(n: int, rng: random.Random, disaggregated: bool = False) -> FleetView:
    def replicas(pool: str, k: int) -> tuple[ReplicaView, ...]:
        return tuple(
            ReplicaView(
                id=f"{pool}-{i}",
                pool=pool,
                state="ready",
                running=rng.randrange(64),
                waiting=rng.randrange(4),
                tokens_in_flight=rng.randrange(100_000),
                kv_used_blocks=rng.randrange(20_000),
                kv_total_blocks=20_000,
            )
            for i in range(k)
        )

    if disaggregated:
        roles = (("prefill", n // 2), ("decode", n - n // 2))
    else:
        roles = (("short", n - n // 4), ("long", n // 4))
    pools = tuple(
        PoolView(
            name,
            name if disaggregated else "mixed",
            "Llama-3.1-8B",
            "H100-SXM",
            replicas(name, k),
            3.0,
        )
        for name, k in roles
    )
    return FleetView(pools=pools, now=0.0)


def requests(n: int, rng: random.Random) -> list[RequestView]:
    out = []
    for i in range(n):
        system = rng.randrange(8)
        blocks = tuple(system * 1000 + b for b in range(32)) + tuple(
            10**6 + i * 100 + b for b in range(rng.randrange(1, 40))
        )
        out.append(
            RequestView(
                i,
                0.0,
                16 * len(blocks),
                blocks,
                16,
                rng.randrange(200),
                "chat",
                0.5,
                "en",
                "text",
                "standard",
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=2000)
    args = parser.parse_args()
    sizes = (8, 64, 512)
    print(f"{'router':18}" + "".join(f"{f'{n} replicas':>14}" for n in sizes) + "   (us/decision)")
    for name in sorted(ROUTERS.classes):
        cells = []
        for n in sizes:
            rng = random.Random(n)
            f = fleet(n, rng, disaggregated=name == "pd_pair")
            reqs = requests(args.decisions, rng)
            router = build_router(name, PARAMS.get(name, {}))
            start = time.perf_counter()
            for r in reqs:
                router.route(r, f)
            cells.append((time.perf_counter() - start) / len(reqs) * 1e6)
        print(f"{name:18}" + "".join(f"{c:>14.1f}" for c in cells))


if __name__ == "__main__":
    main()
