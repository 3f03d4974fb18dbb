"""Synthetic workloads: class mix, sessions, prefixes, closed loops, determinism, laziness."""

from __future__ import annotations

import itertools
import math
import tracemalloc
from collections import Counter, defaultdict

import numpy as np
import pytest

from wrpfleet.errors import InputError
from wrpfleet.schema import validate
from wrpfleet.workload import PRESETS, SyntheticWorkload


def workload(**spec) -> SyntheticWorkload:
    spec.setdefault("arrival", {"process": "poisson", "rate": 10.0})
    return validate(SyntheticWorkload, spec)


def test_class_weights():
    w = workload(
        classes=[
            {"preset": "chat", "weight": 5},
            {"preset": "code", "weight": 3},
            {"preset": "rag", "weight": 2},
        ],
        duration_s=2_000,
    )
    counts = Counter(r.category for r in w.requests())
    n = sum(counts.values())
    for category, p in [("chat", 0.5), ("code", 0.3), ("rag", 0.2)]:
        assert abs(counts[category] - n * p) < 4 * math.sqrt(n * p * (1 - p))


def test_every_preset_generates_tagged_requests():
    for name in PRESETS:
        reqs = list(workload(classes=[{"preset": name}], duration_s=60).requests())
        assert reqs, name
        assert {r.category for r in reqs} == {PRESETS[name]["category"]}
        assert {r.slo_class for r in reqs} == {PRESETS[name]["slo_class"]}
        assert all(0 <= r.difficulty <= 1 for r in reqs)
        assert all(r.input_tokens >= 1 and r.output_tokens >= 1 for r in reqs)


def test_prompt_is_shared_prefix_plus_input():
    w = workload(
        classes=[{"input": 100, "output": 10, "prefix": {"tokens": 64, "variants": 1}}],
        duration_s=20,
    )
    reqs = list(w.requests())
    assert {r.input_tokens for r in reqs} == {164}
    shared = {r.prefix_blocks[:4] for r in reqs}
    assert len(shared) == 1  # one variant: every request starts with the same 4 blocks
    tails = [b for r in reqs for b in r.prefix_blocks[4:]]
    assert len(tails) == len(set(tails))  # the rest is unique: cold
    assert all(len(r.prefix_blocks) == 164 // 16 for r in reqs)


def test_zipf_makes_the_first_variant_most_popular():
    w = workload(
        classes=[{"input": 10, "prefix": {"tokens": 32, "variants": 4, "zipf_s": 1.5}}],
        duration_s=500,
    )
    counts = Counter(r.prefix_blocks[0] for r in w.requests())
    ranked = [c for _, c in counts.most_common()]
    weights = np.arange(1, 5) ** -1.5
    expected = weights / weights.sum() * sum(ranked)
    assert np.all(np.abs(np.array(ranked) - expected) < 4 * np.sqrt(expected))


def test_cold_class_never_repeats_a_block():
    reqs = list(workload(classes=[{"input": 500}], duration_s=60).requests())
    blocks = [b for r in reqs for b in r.prefix_blocks]
    assert len(blocks) == len(set(blocks))


def test_sessions_grow_their_context_turn_by_turn():
    w = workload(
        arrival={"process": "poisson", "rate": 0.5},
        classes=[
            {
                "input": 200,
                "output": 50,
                "prefix": {"tokens": 128},
                "session": {
                    "turns": 4,
                    "think_s": {"dist": "exponential", "mean": 5},
                    "new_input": 30,
                },
            }
        ],
        duration_s=10_000,
    )
    reqs = list(w.requests())
    by_id = {r.id: r for r in reqs}
    sessions = defaultdict(list)
    for r in reqs:
        sessions[r.session_id].append(r)
    complete = [s for s in sessions.values() if s[0].arrival_s < 9_900]
    assert all(len(s) == 4 for s in complete)
    for turns in sessions.values():
        assert [r.turn for r in turns] == list(range(len(turns)))
        first = turns[0]
        assert first.follows is None and first.input_tokens == 128 + 200
        for prev, cur in itertools.pairwise(turns):
            assert cur.follows == prev.id and by_id[cur.follows] is prev
            assert cur.input_tokens == prev.input_tokens + prev.output_tokens + 30
            assert cur.prefix_blocks[: len(prev.prefix_blocks)] == prev.prefix_blocks
            assert cur.arrival_s == pytest.approx(prev.arrival_s + cur.think_s)
    thinks = [r.think_s for r in reqs if r.follows is not None]
    assert np.mean(thinks) == pytest.approx(5.0, rel=4 / math.sqrt(len(thinks)))
    assert [r.arrival_s for r in reqs] == sorted(r.arrival_s for r in reqs)


def test_closed_loop_users_chain_their_requests():
    users = 8
    w = workload(
        arrival={
            "process": "closed",
            "users": users,
            "think_s": {"dist": "exponential", "mean": 2},
        },
        classes=[{"input": 100, "output": 20}],
        duration_s=2_000,
    )
    reqs = list(w.requests())
    by_id = {r.id: r for r in reqs}
    heads = [r for r in reqs if r.follows is None]
    assert len(heads) == users
    followed = Counter(r.follows for r in reqs if r.follows is not None)
    assert max(followed.values()) == 1  # each request releases at most one next request
    for r in reqs:
        if r.follows is not None:
            assert r.arrival_s == pytest.approx(by_id[r.follows].arrival_s + r.think_s)
    # zero service time: each user issues about horizon / think requests
    assert len(reqs) == pytest.approx(users * 2_000 / 2, rel=0.05)


def test_closed_loop_with_zero_think_needs_a_count():
    with pytest.raises(InputError, match="zero think time"):
        workload(arrival={"process": "closed", "users": 2}, duration_s=10)
    reqs = list(
        workload(
            arrival={"process": "closed", "users": 2}, duration_s=None, num_requests=50
        ).requests()
    )
    assert len(reqs) == 50


def test_joint_lengths_from_a_trace(repo):
    trace = repo / "workloads/traces/azure2023_conv_first2000.csv.gz"
    from wrpfleet.workload.distribution import trace_lengths

    inputs, outputs = trace_lengths(trace)
    pairs = set(zip(inputs.tolist(), outputs.tolist(), strict=True))
    reqs = list(workload(classes=[{"lengths_from": str(trace)}], duration_s=300).requests())
    assert all((r.input_tokens, r.output_tokens) in pairs for r in reqs)
    assert np.mean([r.input_tokens for r in reqs]) == pytest.approx(inputs.mean(), rel=0.1)


def test_languages_follow_their_weights():
    w = workload(classes=[{"language": {"en": 3, "zh": 1}}], duration_s=1_000)
    counts = Counter(r.language for r in w.requests())
    n = counts.total()
    assert abs(counts["zh"] - n / 4) < 4 * math.sqrt(n * 0.25 * 0.75)


def test_deterministic_for_a_seed():
    w = workload(classes=[{"preset": "chat"}, {"preset": "agentic"}], duration_s=300)
    assert list(w.requests(3)) == list(w.requests(3))
    assert list(w.requests(3)) != list(w.requests(4))
    assert list(w.requests()) == list(w.requests(w.seed))


def test_num_requests_and_duration_cut_the_stream():
    assert len(list(workload(num_requests=123, duration_s=None).requests())) == 123
    reqs = list(workload(duration_s=50).requests())
    assert max(r.arrival_s for r in reqs) < 50
    assert [r.id for r in reqs] == list(range(len(reqs)))


def test_lazy_ten_million_requests_hold_no_more_than_a_few():
    """Memory is bounded by what is in flight, not by how many requests are issued."""
    w = workload(
        arrival={"process": "poisson", "rate": 1_000.0},
        classes=[{"preset": "chat"}, {"preset": "code"}],
        num_requests=10_000_000,
        duration_s=None,
    )
    peaks = []
    for n in (5_000, 50_000):
        tracemalloc.start()
        assert sum(1 for _ in itertools.islice(w.requests(), n)) == n
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0]  # ten times the requests, about the same memory
    assert peaks[1] < 10e6  # bytes


def test_closed_loop_with_zero_think_time_keeps_every_user_busy():
    reqs = list(
        workload(
            arrival={"process": "closed", "users": 4}, duration_s=None, num_requests=40
        ).requests()
    )
    assert Counter(r.session_id for r in reqs) == {0: 10, 1: 10, 2: 10, 3: 10}
    assert [r.follows for r in reqs[:4]] == [None] * 4
