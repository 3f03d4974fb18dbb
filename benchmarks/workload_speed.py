"""How fast workloads are produced: synthetic generators and trace readers.

Prints requests per second of wall time for each source, measured in one run,
and each one's cost relative to drawing bare Poisson arrival times (the floor).

    python benchmarks/workload_speed.py [--requests N]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from wrpfleet.schema import validate
from wrpfleet.workload import SyntheticWorkload, TraceWorkload
from wrpfleet.workload.arrival import Poisson

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WRPFLEET_SHARED_DATA", REPO.parent / "shared" / "data"))


def rate(make: Callable[[], Iterable], n: int | None = None) -> tuple[int, float]:
    start = time.perf_counter()
    count = sum(1 for _ in itertools.islice(make(), n))
    return count, count / (time.perf_counter() - start)


def synthetic(classes: list[dict], n: int) -> SyntheticWorkload:
    return validate(
        SyntheticWorkload,
        {
            "arrival": {"process": "poisson", "rate": 100.0},
            "classes": classes,
            "num_requests": n,
            "duration_s": None,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    n = parser.parse_args().requests
    poisson = validate(Poisson, {"process": "poisson", "rate": 100.0})
    cases: list[tuple[str, Callable[[], Iterable], int | None]] = [
        ("poisson arrival times only", lambda: poisson.times(np.random.default_rng(0)), n),
        (
            "synthetic: code (short prompts in blocks)",
            synthetic([{"preset": "code"}], n).requests,
            n,
        ),
        ("synthetic: chat", synthetic([{"preset": "chat"}], n).requests, n),
        (
            "synthetic: mixed, all presets",
            synthetic(
                [
                    {"preset": p}
                    for p in ("chat", "code", "rag", "reasoning", "agentic", "multiturn")
                ],
                n,
            ).requests,
            n,
        ),
    ]
    for name in ("azure2023_conv.csv.gz", "mooncake_conversation.jsonl.gz"):
        path = SHARED / "traces" / name
        if path.exists():
            trace = validate(TraceWorkload, {"kind": "trace", "path": path})
            cases.append((f"trace: {name}", trace.requests, None))
    print(f"{'source':44} {'requests':>10} {'req/s':>12} {'x floor':>8}")
    floor = None
    for name, make, limit in cases:
        count, per_s = rate(make, limit)
        floor = floor or per_s
        print(f"{name:44} {count:>10,} {per_s:>12,.0f} {floor / per_s:>8.1f}")


if __name__ == "__main__":
    main()
