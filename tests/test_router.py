"""Each router on hand-built views picks what its definition says."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from wrpfleet.errors import InputError
from wrpfleet.router import ROUTERS, build_router
from wrpfleet.router.affinity import HashRing, PrefixIndex
from wrpfleet.types import FleetView, PoolView, ReplicaView, RequestView, RouteDecision


def rep(
    i: int | str,
    running: int = 0,
    waiting: int = 0,
    kv: int = 0,
    pool: str = "p",
    state: str = "ready",
    tokens: int = 0,
    total: int = 1000,
) -> ReplicaView:
    return ReplicaView(
        id=f"{pool}-{i}",
        pool=pool,
        state=state,
        running=running,
        waiting=waiting,
        tokens_in_flight=tokens,
        kv_used_blocks=kv,
        kv_total_blocks=total,
    )


def pool(replicas: list[ReplicaView], name: str = "p", role: str = "mixed") -> PoolView:
    return PoolView(name, role, "Llama-3.1-8B", "H100-SXM", tuple(replicas), 3.0)


def fleet(*pools: PoolView) -> FleetView:
    return FleetView(pools=tuple(pools), now=0.0)


def req(
    i: int = 0, tokens: int = 100, prefix: tuple[int, ...] = (), session: int | None = None
) -> RequestView:
    return RequestView(i, 0.0, tokens, prefix, 16, session, "chat", 0.5, "en", "text", "standard")


def test_no_router_imports_simpy_ray_or_vllm():
    code = (
        "import sys, wrpfleet.router, wrpfleet.autoscale; "
        "print(sorted(m for m in ('simpy', 'ray', 'vllm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


MINIMAL = {
    "context_length": {"routes": [{"pool": "p"}]},
    "semantic": {"rules": [{"when": {"category": "code"}, "pool": "p"}], "default": "p"},
}


@pytest.mark.parametrize("name", sorted(ROUTERS.classes))
def test_every_router_rejects_when_nothing_is_ready(name):
    r = build_router(name, MINIMAL.get(name, {}))
    d = r.route(req(), fleet(pool([rep(0, state="starting"), rep(1, state="draining")])))
    assert d.replica is None and d.reject_reason


def test_round_robin_cycles_in_fleet_order():
    f = fleet(pool([rep(0), rep(1, running=9), rep(2)]))
    r = build_router("round_robin")
    assert [r.route(req(), f).replica for _ in range(4)] == ["p-0", "p-1", "p-2", "p-0"]


def test_random_is_uniform_and_seeded():
    f = fleet(pool([rep(i) for i in range(4)]))
    picks = [build_router("random", {"seed": 3}).route(req(), f).replica for _ in range(1)]
    again = [build_router("random", {"seed": 3}).route(req(), f).replica for _ in range(1)]
    assert picks == again
    r = build_router("random", {"seed": 1})
    counts = Counter(r.route(req(), f).replica for _ in range(4000))
    assert set(counts) == {f"p-{i}" for i in range(4)}
    assert all(900 < c < 1100 for c in counts.values()), counts


def test_least_requests_then_kv():
    f = fleet(pool([rep(0, running=3), rep(1, running=1, kv=500), rep(2, waiting=1, kv=100)]))
    assert build_router("least_requests").route(req(), f).replica == "p-2"


def test_least_kv_then_requests():
    f = fleet(pool([rep(0, running=1, kv=100), rep(1, running=9, kv=50), rep(2, kv=50)]))
    assert build_router("least_kv").route(req(), f).replica == "p-2"


def test_power_of_two_takes_the_less_loaded_of_two_distinct_samples():
    loads = [5, 0, 9, 2]
    f = fleet(pool([rep(i, running=n) for i, n in enumerate(loads)]))
    r = build_router("power_of_two", {"seed": 7})
    counts = Counter(r.route(req(), f).replica for _ in range(6000))
    # The most loaded replica loses every pair it is in; the least loaded wins all of
    # its pairs (3 of the 6 pairs): picked half the time.
    assert "p-2" not in counts
    assert counts["p-1"] / 6000 == pytest.approx(0.5, abs=0.03)
    assert counts["p-3"] / 6000 == pytest.approx(2 / 6, abs=0.03)
    assert counts["p-0"] / 6000 == pytest.approx(1 / 6, abs=0.03)


def test_disaggregated_pairs_for_balancers():
    f = fleet(
        pool([rep(0, pool="pre", running=4), rep(1, pool="pre")], "pre", "prefill"),
        pool([rep(0, pool="dec"), rep(1, pool="dec", waiting=0, kv=0)], "dec", "decode"),
    )
    d = build_router("least_requests").route(req(), f)
    assert (d.prefill_replica, d.replica) == ("pre-1", "dec-0")


def test_prefix_index_matches_the_longest_recorded_prefix_and_evicts_lru():
    idx = PrefixIndex(engine_block_tokens=16)
    a, b = rep(0, total=4), rep(1, total=100)  # a holds 4 blocks of 16 tokens
    idx.record(a, (1, 2, 3), 16)
    idx.record(b, (1, 2, 9), 16)
    assert idx.match((1, 2, 3, 4), [a, b]) == {"p-0": 3, "p-1": 2}
    assert idx.match((7, 1), [a, b]) == {}
    idx.record(a, (5, 6), 16)  # 5 blocks on a, capacity 4: block 1 (LRU) goes
    assert idx.match((1, 2, 3), [a, b]) == {"p-1": 2}
    assert idx.match((5, 6), [a, b]) == {"p-0": 2}


def test_prefix_affinity_follows_the_cache_until_overloaded():
    r = build_router("prefix_affinity", {"slack": 2})
    idle = [rep(0), rep(1), rep(2)]
    first = r.route(req(prefix=(1, 2, 3)), fleet(pool(idle))).replica
    assert first == "p-0"  # nothing cached: least loaded
    # The same prefix goes back to p-0 although p-1 and p-2 are as free...
    loaded = [rep(0, running=2), rep(1), rep(2)]
    assert r.route(req(prefix=(1, 2, 3, 4)), fleet(pool(loaded))).replica == "p-0"
    # ... until it has more than `slack` requests above the least loaded one.
    busy = [rep(0, running=3), rep(1), rep(2)]
    assert r.route(req(prefix=(1, 2, 3)), fleet(pool(busy))).replica == "p-1"
    # A longer match wins over a shorter one: p-1 now holds 1, 2, 3 too.
    r.route(req(prefix=(1, 2, 3, 8)), fleet(pool([rep(0, running=9), rep(1), rep(2)])))
    assert r.route(req(prefix=(1, 2, 3, 8, 9)), fleet(pool(idle))).replica == "p-1"


def test_session_affinity_sticks_and_bounds_load():
    r = build_router("session_affinity", {"load_factor": 1.25})
    idle = [rep(i) for i in range(8)]
    homes = {s: r.route(req(session=s), fleet(pool(idle))).replica for s in range(200)}
    assert len(set(homes.values())) == 8  # sessions spread over every replica
    again = {s: r.route(req(session=s), fleet(pool(idle))).replica for s in range(200)}
    assert homes == again
    # A home at its bound (ceil(1.25 x (8 + 1) / 8) = 2 outstanding) passes the
    # session to the next replica clockwise; the others keep theirs.
    s0 = homes[0]
    loaded = [rep(i, running=2 if f"p-{i}" == s0 else 0) for i in range(8)]
    moved = r.route(req(session=0), fleet(pool(loaded))).replica
    assert moved != s0
    others = [s for s in range(200) if homes[s] != s0]
    assert all(r.route(req(session=s), fleet(pool(loaded))).replica == homes[s] for s in others)


def test_hash_ring_moves_few_keys_when_a_replica_leaves():
    ring = HashRing(vnodes=100, load_factor=100.0)  # no load bound: pure consistent hashing
    ten = [rep(i) for i in range(10)]
    before = {k: ring.home(f"k{k}", ten).id for k in range(2000)}
    after = {k: ring.home(f"k{k}", ten[:9]).id for k in range(2000)}
    moved = sum(before[k] != after[k] for k in before)
    assert moved == sum(v == "p-9" for v in before.values())  # only the leaver's keys


def test_scored_combines_weighted_signals():
    f = fleet(pool([rep(0, running=4, kv=100), rep(1, running=0, kv=900), rep(2, running=2)]))
    # queue alone: p-1 (0 outstanding); kv alone: p-2 (0 used)
    assert build_router("scored", {"scorers": {"queue": 1}}).route(req(), f).replica == "p-1"
    assert build_router("scored", {"scorers": {"kv": 1}}).route(req(), f).replica == "p-2"
    # both: p-1 scores 1 + 0.1, p-2 0.5 + 1.0, p-0 0 + 0.9
    assert build_router("scored", {"scorers": {"queue": 1, "kv": 1}}).route(req(), f).replica == (
        "p-2"
    )
    # a KV filter removes p-1 before scoring
    r = build_router("scored", {"scorers": {"queue": 1}, "max_kv_usage": 0.5})
    assert r.route(req(), f).replica == "p-2"


def test_scored_prefix_signal_outweighs_queue_when_weighted():
    r = build_router("scored", {"scorers": {"prefix": 2, "queue": 1}})
    idle = fleet(pool([rep(0), rep(1)]))
    assert r.route(req(prefix=(1, 2, 3, 4)), idle).replica == "p-0"
    f = fleet(pool([rep(0, running=5), rep(1)]))
    # p-0: 2 x 4/4 + 0 = 2; p-1: 0 + 1 = 1
    assert r.route(req(prefix=(1, 2, 3, 4)), f).replica == "p-0"
    # a prompt with only half the prefix: p-0 scores 2 x 0.5 = 1, a tie: the first wins
    assert r.route(req(prefix=(1, 2, 7, 8)), f).replica == "p-0"


def test_scored_rejects_unknown_scorers_and_pickers():
    with pytest.raises(InputError, match="unknown scorers latency; available: queue"):
        build_router("scored", {"scorers": {"latency": 1}})
    with pytest.raises(InputError, match="picker must be max or random"):
        build_router("scored", {"picker": "best"})


def test_context_length_routes_by_prompt_and_falls_back_to_longer_pools():
    r = build_router(
        "context_length",
        {"routes": [{"pool": "short", "max_input_tokens": 1000}, {"pool": "long"}]},
    )
    short = pool([rep(0, pool="short"), rep(1, pool="short", running=1)], "short")
    long = pool([rep(0, pool="long")], "long")
    assert r.route(req(tokens=800), fleet(short, long)).replica == "short-0"
    assert r.route(req(tokens=1001), fleet(short, long)).replica == "long-0"
    down = pool([rep(0, pool="short", state="starting")], "short")
    assert r.route(req(tokens=800), fleet(down, long)).replica == "long-0"
    only_short = build_router(
        "context_length", {"routes": [{"pool": "short", "max_input_tokens": 1000}]}
    )
    d = only_short.route(req(tokens=5000), fleet(short, long))
    assert d == RouteDecision.reject("no route takes a prompt of 5000 tokens")


def test_context_length_validates_its_routes():
    with pytest.raises(InputError, match="max_input_tokens"):
        build_router("context_length", {"routes": [{"pool": "a", "max_input_tokens": -1}]})
    with pytest.raises(InputError, match="not a replica load balancer"):
        build_router("context_length", {"routes": [{"pool": "a"}], "balance": "pd_pair"})


def test_pd_pair_chooses_both_ends_and_sends_short_prompts_direct():
    f = fleet(
        pool([rep(0, pool="pre", tokens=9000), rep(1, pool="pre", tokens=100)], "pre", "prefill"),
        pool([rep(0, pool="dec", kv=800), rep(1, pool="dec", kv=200)], "dec", "decode"),
    )
    r = build_router("pd_pair", {"direct_max_input_tokens": 256})
    d = r.route(req(tokens=2000), f)
    assert (d.prefill_replica, d.replica) == ("pre-1", "dec-1")
    d = r.route(req(tokens=200), f)
    assert (d.prefill_replica, d.replica) == (None, "dec-1")


def hetero(a100: list[ReplicaView], h100: list[ReplicaView]) -> FleetView:
    return fleet(
        PoolView("a100", "mixed", "Llama-3.1-8B", "A100-80GB", tuple(a100), 1.5),
        PoolView("h100", "mixed", "Llama-3.1-8B", "H100-SXM", tuple(h100), 3.0),
    )


def slo_req(tokens: int, slo_class: str) -> RequestView:
    return RequestView(0, 0.0, tokens, (), 16, None, "chat", 0.5, "en", "text", slo_class)


def test_slo_aware_takes_the_cheapest_replica_that_meets_the_class():
    from wrpfleet.router.predict import Predictor

    f = hetero([rep(0, pool="a100")], [rep(0, pool="h100")])
    pred = Predictor()
    a = pred.predict(slo_req(4000, "x"), f.pools[0], list(f.pools[0].replicas))
    h = pred.predict(slo_req(4000, "x"), f.pools[1], list(f.pools[1].replicas))
    assert h.ttft_s[0] < a.ttft_s[0] and h.usd_per_token[0] > a.usd_per_token[0]  # fast, dear
    between = float(a.ttft_s[0] + h.ttft_s[0]) / 2
    r = build_router("slo_aware", {"ttft_s": 10.0, "classes": {"interactive": {"ttft_s": between}}})
    assert r.route(slo_req(4000, "standard"), f).pool == "a100"  # both meet: cheaper
    assert r.route(slo_req(4000, "interactive"), f).pool == "h100"  # only H100 meets
    strict = build_router("slo_aware", {"ttft_s": float(h.ttft_s[0]) / 2})
    assert strict.route(slo_req(4000, "standard"), f).pool == "h100"  # none: fastest


def test_predicted_ttft_grows_with_the_queue_ahead():
    from wrpfleet.pool.perf import Batch
    from wrpfleet.router.predict import Predictor

    f = hetero([rep(0, pool="a100")], [rep(0, pool="h100")])
    pool = f.pools[1]
    pred = Predictor()
    idle, queued = pred.predict(
        slo_req(1000, "x"), pool, [rep(0, pool="h100"), rep(1, pool="h100", waiting=4, tokens=8000)]
    ).ttft_s
    assert queued > 2 * idle
    # One request alone: TTFT is its prefill step, by the performance model.
    alone = pred.perf(pool).iteration_time(
        Batch(prefill_tokens=1000, prefill_seqs=1, prefill_attn=1000 * 1001 / 2)
    )
    assert idle == pytest.approx(float(alone))


def test_energy_aware_packs_busy_replicas_while_the_slo_holds():
    busy, idle = rep(0, running=8, tokens=8 * 600), rep(1)
    r = build_router("energy_aware", {"ttft_s": 5.0, "tpot_s": 0.2})
    assert r.route(slo_req(500, "standard"), fleet(pool([idle, busy]))).replica == "p-0"
    # The busy replica cannot hold a tight TPOT target any more: the idle one wakes.
    swamped = rep(0, running=250, tokens=250 * 3000)
    r = build_router("energy_aware", {"ttft_s": 5.0, "tpot_s": 0.02})
    assert r.route(slo_req(500, "standard"), fleet(pool([swamped, idle]))).replica == "p-1"


def tagged(**kw: object) -> RequestView:
    base = dict(
        id=0,
        arrival_s=0.0,
        input_tokens=100,
        prefix_blocks=(),
        block_tokens=16,
        session_id=None,
        category="chat",
        difficulty=0.5,
        language="en",
        modality="text",
        slo_class="standard",
        text="",
    )
    return RequestView(**{**base, **kw})


SEMANTIC = {
    "rules": [
        {
            "name": "hard code",
            "priority": 10,
            "when": {"all": [{"category": "code"}, {"difficulty": {"min": 0.7}}]},
            "pool": "big",
        },
        {
            "name": "long or Spanish",
            "when": {"any": [{"input_tokens": {"min": 8000}}, {"language": ["es", "pt"]}]},
            "pool": "long",
        },
        {"name": "refunds", "when": {"keywords": ["refund", "chargeback"]}, "pool": "support"},
        {"name": "order ids", "when": {"regex": r"ORD-\d{6}"}, "pool": "support"},
        {"name": "not text", "when": {"not": {"modality": "text"}}, "pool": "big"},
    ],
    "default": "small",
}


@pytest.mark.parametrize(
    ("request_", "pool", "rule"),
    [
        (tagged(category="code", difficulty=0.9), "big", "hard code"),
        (tagged(category="code", difficulty=0.9, input_tokens=9000), "big", "hard code"),
        (tagged(category="code", difficulty=0.3, input_tokens=9000), "long", "long or Spanish"),
        (tagged(language="pt"), "long", "long or Spanish"),
        (tagged(text="I want a REFUND now"), "support", "refunds"),
        (tagged(text="refunded twice"), "small", "default"),  # whole words only
        (tagged(text="where is ORD-123456?"), "support", "order ids"),
        (tagged(modality="image"), "big", "not text"),
        (tagged(), "small", "default"),
    ],
)
def test_semantic_rules_pick_by_priority_then_order(request_, pool, rule):
    r = build_router("semantic", SEMANTIC)
    assert r.decide(request_) == (pool, rule)


def test_semantic_routes_into_the_chosen_pool_and_balances_there():
    r = build_router("semantic", SEMANTIC)
    f = fleet(
        pool([rep(0, pool="small", running=3), rep(1, pool="small")], "small"),
        pool([rep(0, pool="big")], "big"),
    )
    assert r.route(tagged(), f).replica == "small-1"
    assert r.route(tagged(category="code", difficulty=1.0), f).replica == "big-0"
    d = r.route(tagged(language="es"), f)
    assert d.replica is None and d.reject_reason == "long or Spanish: no ready replica in pool long"


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"when": {"colour": "red"}, "pool": "a"}], r"rules\[0\]\.when\.colour: unknown signal"),
        ([{"when": {"regex": "("}, "pool": "a"}], r"rules\[0\]\.when\.regex: bad regex"),
        ([{"when": {"all": []}, "pool": "a"}], "all takes a non-empty list"),
        ([{"when": {"difficulty": 0.5}, "pool": "a"}], r"difficulty takes \{min: x, max: y\}"),
        ([{"pool": "a"}], "a rule has when and pool"),
        ([{"when": {"category": "a"}, "pool": "a", "weight": 2}], "unknown: weight"),
    ],
)
def test_semantic_rule_errors_say_where(rules, message):
    with pytest.raises(InputError, match=message):
        build_router("semantic", {"rules": rules})


def two_models() -> FleetView:
    return fleet(
        PoolView("small", "mixed", "Llama-3.1-8B", "H100-SXM", (rep(0, pool="small"),), 3.0),
        PoolView("big", "mixed", "Llama-3.1-70B", "H100-SXM", (rep(0, pool="big"),), 12.0, tp=4),
    )


def test_cascade_escalates_when_the_small_model_is_predicted_to_fail():
    from wrpfleet.pool.quality import p_good

    r = build_router("cascade", {"threshold": 0.8})
    f = two_models()
    easy, hard = tagged(difficulty=0.2), tagged(difficulty=0.6)
    assert p_good("Llama-3.1-8B", "chat", 0.2) >= 0.8 > p_good("Llama-3.1-8B", "chat", 0.6)
    assert r.route(easy, f).pool == "small"  # the cheaper pool first
    assert r.route(hard, f).pool == "big"
    # Harder than either can do well: the last (largest) pool.
    assert r.route(tagged(difficulty=1.0), f).pool == "big"
    # The router's belief can be overridden per model and category.
    sure = build_router(
        "cascade", {"threshold": 0.8, "capabilities": {"Llama-3.1-8B": {"chat": 0.99}}}
    )
    assert sure.route(hard, f).pool == "small"


def test_bandit_learns_per_context_which_pool_pays():
    """Code needs the big model (the small one fails it); chat is answered well by
    both, and the small one costs less: after a few hundred outcomes the bandit
    sends code to big and chat to small."""
    from wrpfleet.types import Outcome

    r = build_router("bandit", {"exploration": 0.3, "energy": 0.0, "cost": 0.2})
    f = two_models()
    truth = {("code", "small"): 0.0, ("code", "big"): 1.0, ("chat", "small"): 1.0}
    price = {"small": 1.0, "big": 4.0}  # USD per million output tokens
    for i in range(600):
        category = "code" if i % 2 else "chat"
        req = tagged(id=i, category=category)
        pool = r.route(req, f).pool
        quality = truth.get((category, pool), 1.0)
        r.observe(
            Outcome(
                i, pool, f"{pool}-0", 0.0, 0.1, 1.0, 100, 10.0, price[pool] * 100 / 1e6, quality
            )
        )
    late = [r.route(tagged(id=1000 + i, category=c), f).pool for i, c in enumerate(["code"] * 20)]
    assert late.count("big") >= 18
    late = [r.route(tagged(id=2000 + i, category="chat"), f).pool for i in range(20)]
    assert late.count("small") >= 18


def test_scored_presets_match_the_single_policies():
    """`scored` with the queue scorer alone is least-outstanding-requests, with the KV
    scorer alone least-KV: on random views they pick equally loaded replicas (the
    single policies are kept as direct code, ten times cheaper a decision)."""
    import random

    rng = random.Random(5)
    queue = build_router("scored", {"scorers": {"queue": 1}})
    kv = build_router("scored", {"scorers": {"kv": 1}})
    for _ in range(200):
        f = fleet(pool([rep(i, running=rng.randrange(6), kv=rng.randrange(50)) for i in range(6)]))
        views = {r.id: r for r in f.pools[0].replicas}
        a, b = queue.route(req(), f).replica, build_router("least_requests").route(req(), f).replica
        assert views[a].outstanding == views[b].outstanding
        a, b = kv.route(req(), f).replica, build_router("least_kv").route(req(), f).replica
        assert views[a].kv_usage == views[b].kv_usage
