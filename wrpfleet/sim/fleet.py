"""A fleet of pools under a router, driven by a workload: the simulation run.

Requests arrive lazily from the scenario's stream. One that ``follows`` another is
released ``think_s`` after that one completes (sessions, closed loops). The router
sees a `FleetView` built from the replicas' own state and returns a decision the
fleet carries out, exactly as the live ingress does.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count

import simpy

from wrpfleet.autoscale import build_autoscaler
from wrpfleet.config import Scenario
from wrpfleet.errors import InputError
from wrpfleet.pool.catalog import gpu as gpu_spec
from wrpfleet.pool.catalog import model as model_spec
from wrpfleet.pool.perf import Constants, PerfModel
from wrpfleet.pool.spec import PoolSpec
from wrpfleet.router import build_router
from wrpfleet.sim.engine import Replica, Seq
from wrpfleet.sim.metrics import Recorder
from wrpfleet.types import FleetView, PoolMetrics, PoolView, Request, RequestView

GIB = 1024**3
RUNTIME_RESERVE_GIB = 1.0  # CUDA context, NCCL buffers, CUDA graphs, per GPU


def kv_blocks(pool: PoolSpec, perf: PerfModel) -> int:
    """KV blocks of one replica, as vLLM sizes them: GPU memory x utilisation, less
    weights and the activation peak of a ``max_num_batched_tokens`` forward pass."""
    gpu, model, eng, tp = perf.gpu, perf.model, pool.engine, pool.tp
    budget = tp * gpu.memory_gib * GIB * eng.gpu_memory_utilization
    weights = perf.weight_bytes
    activations = eng.max_num_batched_tokens * (model.hidden_size + model.intermediate_size) * 4
    reserve = tp * RUNTIME_RESERVE_GIB * GIB + activations
    free = budget - weights - reserve
    blocks = int(free // (perf.kv_bytes * eng.block_size))
    if blocks < 1:
        raise InputError(
            f"{pool.model} does not fit: {weights / 1e9:.1f} GB of weights and "
            f"{reserve / 1e9:.1f} GB of runtime and activations, but {tp} x {pool.gpu} give "
            f"{budget / 1e9:.1f} GB at gpu_memory_utilization {eng.gpu_memory_utilization}; "
            "raise tp, use fp8 or a GPU with more memory",
            field=f"pools.{pool.name}",
        )
    return blocks


def replica_engine(pool: PoolSpec) -> tuple[PerfModel, int, int]:
    """What a replica of the pool runs on: its performance model (the pool's stack's
    fitted constants), its KV blocks and its context limit (simulated or twin)."""
    gpu, model = gpu_spec(pool.gpu), model_spec(pool.model)
    constants = Constants.fitted(pool.engine.calibration)
    perf = PerfModel(gpu, model, pool.tp, pool.dtype, constants)
    max_len = pool.engine.max_model_len or model.max_position_embeddings
    return perf, kv_blocks(pool, perf), max_len


def cold_start_s(pool: PoolSpec, perf: PerfModel) -> float:
    """Seconds from scale-up to ready: the pool's own figure, or the estimate."""
    return pool.cold_start_s if pool.cold_start_s is not None else perf.cold_start_s


@dataclass
class Pool:
    spec: PoolSpec
    perf: PerfModel
    replicas: list[Replica]
    kv_blocks: int
    max_model_len: int
    target: int
    routed: int = 0  # requests routed here since the autoscaler last looked

    @property
    def price_per_replica_hour(self) -> float:
        return self.spec.price_per_replica_hour

    @property
    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.state in ("starting", "ready")]


class Simulation:
    def __init__(self, scenario: Scenario, fast: bool = True) -> None:
        self.scenario = scenario
        self.env = simpy.Environment()
        self.router = build_router(scenario.router.policy, scenario.router.params)
        self.recorder = Recorder(scenario)
        self.pools: dict[str, Pool] = {}
        self.replicas: dict[str, Replica] = {}
        self.fast = fast
        # The fleet view, kept current incrementally: replicas report changes
        # (`_pending`), views inside fast phases expire at step boundaries (`_expiry`).
        self._rebuild = True
        self._pending: list[Replica] = []
        self._expiry: list[tuple[float, int, Replica]] = []
        self._due: dict[Replica, float] = {}  # the expiry each replica's entry stands for
        self._ticket = count()
        self._slots: dict[Replica, tuple[str, int]] = {}
        self._views: dict[str, list] = {}
        self._pool_views: dict[str, PoolView] = {}
        for spec in scenario.pools:
            perf, blocks, max_len = replica_engine(spec)
            pool = Pool(spec, perf, [], blocks, max_len, spec.replicas)
            self.pools[spec.name] = pool
            for _ in range(spec.replicas):
                self._add_replica(pool, "ready")
        self.autoscaler = None
        if scenario.autoscaler is not None:
            self.autoscaler = build_autoscaler(
                scenario.autoscaler.policy, scenario.autoscaler.params
            )
        self._done_at: dict[int, float] = {}
        self._children: dict[int, Request] = {}
        self._on_progress: Callable[[float, int], None] | None = None
        self._stream_done = False
        self._outstanding = 0  # released and neither completed nor rejected
        self._held: list[tuple[Request, float]] = []
        self.scale_log: list[tuple[float, str, int, int, str]] = []

    # ------------------------------------------------------------------ running

    def start(self, on_progress: Callable[[float, int], None] | None = None) -> None:
        """Set the arrivals (and the autoscaler) going; `run` runs them to the end, a
        test may step ``env`` itself."""
        self._on_progress = on_progress
        self.env.process(self._arrivals(iter(self.scenario.requests())))
        if self.autoscaler is not None:
            for pool in self.pools.values():
                self.env.process(self._autoscale(pool))

    def run(self, on_progress: Callable[[float, int], None] | None = None) -> Recorder:
        """Run until every request has completed or been rejected."""
        self.start(on_progress)
        self.env.run()
        self.recorder.close(self.env.now, self)
        return self.recorder

    # ------------------------------------------------------------------ scaling

    def _add_replica(self, pool: Pool, state: str) -> Replica:
        name = f"{pool.spec.name}-{len(pool.replicas)}"
        r = Replica(
            self.env,
            name,
            pool.spec.name,
            pool.perf,
            pool.spec.engine,
            pool.kv_blocks,
            self._finished,
            self.fast,
            pool.max_model_len,
            state,
            self._pending.append,
        )
        r.price_per_s = pool.price_per_replica_hour / 3600
        self._rebuild = True
        pool.replicas.append(r)
        self.replicas[name] = r
        if state == "starting":
            self.env.process(self._start(r, cold_start_s(pool.spec, pool.perf)))
        return r

    def _start(self, r: Replica, delay: float):
        yield self.env.timeout(delay)
        if r.state == "starting":
            r.set_state("ready")
            held, self._held = self._held, []
            for req, at in held:
                self._dispatch(req, released=at)

    def _scale_to(self, pool: Pool, target: int) -> None:
        live = pool.live
        pool.target = target
        self._rebuild = True
        for _ in range(target - len(live)):
            self._add_replica(pool, "starting")
        if target < len(live):
            # Cancel starting replicas first, then drain the least loaded ready ones.
            order = sorted(
                live, key=lambda r: (r.state == "ready", len(r.running) + len(r.waiting))
            )
            for r in order[: len(live) - target]:
                r.set_state("draining")

    def _autoscale(self, pool: Pool):
        spec, scaler = self.scenario.autoscaler, self.autoscaler
        lo, hi = pool.spec.bounds
        while not (self._stream_done and self._outstanding == 0):
            yield self.env.timeout(spec.interval_s)
            view = self._pool_view(pool)
            metrics = PoolMetrics(pool.routed / spec.interval_s, spec.interval_s)
            pool.routed = 0
            decision = scaler.decide(view, metrics, self.env.now)
            target = max(lo, min(hi, decision.target))
            if target != pool.target:
                self.scale_log.append(
                    (self.env.now, pool.spec.name, pool.target, target, decision.reason)
                )
                self._scale_to(pool, target)

    # ------------------------------------------------------------------ requests

    def _arrivals(self, stream: Iterator[Request]):
        env = self.env
        for req in stream:
            if req.arrival_s > env.now:
                yield env.timeout(req.arrival_s - env.now)
            if req.follows is None:
                self._dispatch(req)
            elif req.follows in self._done_at:
                done = self._done_at.pop(req.follows)
                env.process(self._release(req, done + req.think_s))
            else:
                self._children[req.follows] = req
        self._stream_done = True

    def _release(self, req: Request, at: float):
        yield self.env.timeout(max(0.0, at - self.env.now))
        self._dispatch(req)

    def _dispatch(self, req: Request, released: float | None = None) -> None:
        """Route a request; ``released`` is when it reached the fleet, if it was held."""
        at = self.env.now if released is None else released
        if released is None:
            self.recorder.released(req, at)
            self._outstanding += 1
            if self._on_progress is not None and self.recorder.requests_in % 1000 == 0:
                self._on_progress(self.env.now, self.recorder.requests_in)
        decision = self.router.route(RequestView.of(req), self.view())
        if decision.replica is None and self._hold(req, at):
            return
        if decision.replica is None:
            self.recorder.rejected(req, at, decision.reject_reason or "rejected")
            self._completed(req.id, req.session_id is not None)
            return
        replica = self.replicas.get(decision.replica)
        if replica is None:
            raise RuntimeError(f"router chose unknown replica {decision.replica!r}")
        if decision.prefill_replica is not None:
            prefill = self.replicas[decision.prefill_replica]
            self.pools[prefill.pool].routed += 1
            seq = prefill.submit(req, at)
            seq.prefilled_on = prefill.name
            seq.handoff = lambda s, p=prefill, d=replica: self.env.process(self._transfer(s, p, d))
            return
        self.pools[replica.pool].routed += 1
        replica.submit(req, at)

    def _transfer(self, s: Seq, prefill: Replica, decode: Replica):
        """Move a prefilled sequence's KV cache to its decode replica: blocks are taken at
        the decode end first (waiting until some are free), held at both ends while the
        bytes cross the link (latency + bytes / bandwidth), then freed at the prefill end."""
        while (landed := decode.reserve(s)) is None:
            yield decode.blocks_freed()
        link = self.scenario.kv_link
        size = prefill.perf.kv_bytes * s.computed
        yield self.env.timeout(link.latency_s + size / (link.bandwidth_gb_s * 1e9))
        prefill.release(s)
        decode.receive(landed)

    def _hold(self, req: Request, at: float) -> bool:
        """No replica is ready: hold the request while one starts (starting one from zero
        if its pool may scale), as Ray Serve queues requests at the handle."""
        if self.autoscaler is None:
            return False
        starting = [r for p in self.pools.values() for r in p.replicas if r.state == "starting"]
        if not starting:
            pool = next(
                (
                    p
                    for p in self.pools.values()
                    if p.spec.role == "mixed" and p.spec.bounds[1] > len(p.live)
                ),
                None,
            )
            if pool is None:
                return False
            self._scale_to(pool, len(pool.live) + 1)
        self._held.append((req, at))
        return True

    def _finished(self, seq: Seq, replica: Replica) -> None:
        outcome = self.recorder.finished(seq, replica, self.env.now)
        observe = getattr(self.router, "observe", None)
        if observe is not None and outcome is not None:
            observe(outcome)
        self._completed(seq.req.id, seq.req.session_id is not None)

    def _completed(self, rid: int, session: bool) -> None:
        self._outstanding -= 1
        child = self._children.pop(rid, None)
        if child is not None:
            self.env.process(self._release(child, self.env.now + child.think_s))
        elif session:  # only requests in a session (or a closed-loop user) have followers
            self._done_at[rid] = self.env.now

    def _pool_view(self, p: Pool) -> PoolView:
        self.view()
        return self._pool_views[p.spec.name]

    def view(self) -> FleetView:
        """The fleet as the router sees it now. Only replicas that changed since the last
        call, or whose fast-phase view expired, are asked for a new view: a router
        asks on every request, and most replicas have not changed since."""
        now = self.env.now
        expiry, pending, due = self._expiry, self._pending, self._due
        while expiry and expiry[0][0] <= now:
            until, _, r = heapq.heappop(expiry)
            if due.get(r) == until:  # not an entry a newer view replaced
                pending.append(r)
        if self._rebuild or any(r.state == "retired" for r in pending):
            self._rebuild = False
            pending.clear()
            self._slots.clear()
            for name, p in self.pools.items():
                live = [r for r in p.replicas if r.state != "retired"]
                self._views[name] = [self._watch(r) for r in live]
                self._slots.update((r, (name, i)) for i, r in enumerate(live))
                self._pool_views[name] = self._make_pool_view(p)
        elif pending:
            changed = set()
            for r in dict.fromkeys(pending):
                name, i = self._slots[r]
                self._views[name][i] = self._watch(r)
                changed.add(name)
            pending.clear()
            for name in changed:
                self._pool_views[name] = self._make_pool_view(self.pools[name])
        return FleetView(pools=tuple(self._pool_views.values()), now=now)

    def _watch(self, r: Replica):
        """A replica's view now, remembering when it expires."""
        v = r.view()
        until = r.view_until
        if until != float("inf") and self._due.get(r) != until:
            self._due[r] = until
            heapq.heappush(self._expiry, (until, next(self._ticket), r))
        return v

    def _make_pool_view(self, p: Pool) -> PoolView:
        return p.spec.view(tuple(self._views[p.spec.name]), p.target, p.price_per_replica_hour)


__all__ = ["Simulation", "cold_start_s", "kv_blocks", "replica_engine"]
