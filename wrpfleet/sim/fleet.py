"""A fleet of pools under a router, driven by a workload: the simulation run.

Requests arrive lazily from the scenario's stream. One that ``follows`` another is
released ``think_s`` after that one completes (sessions, closed loops). The router
sees a `FleetView` built from the replicas' own state and returns a decision the
fleet carries out, exactly as the live ingress does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import simpy

from wrpfleet.config import Scenario
from wrpfleet.errors import InputError
from wrpfleet.pool.catalog import gpu as gpu_spec
from wrpfleet.pool.catalog import model as model_spec
from wrpfleet.pool.perf import Constants, PerfModel
from wrpfleet.pool.spec import PoolSpec
from wrpfleet.router import build_router
from wrpfleet.sim.engine import Replica, Seq
from wrpfleet.sim.metrics import Recorder
from wrpfleet.types import FleetView, Outcome, PoolView, Request, RequestView

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


@dataclass
class Pool:
    spec: PoolSpec
    perf: PerfModel
    replicas: list[Replica]
    price_per_replica_hour: float


class Simulation:
    def __init__(self, scenario: Scenario, fast: bool = True) -> None:
        self.scenario = scenario
        self.env = env = simpy.Environment()
        self.router = build_router(scenario.router.policy, scenario.router.params)
        self.recorder = Recorder(scenario)
        self.pools: dict[str, Pool] = {}
        self.replicas: dict[str, Replica] = {}
        for spec in scenario.pools:
            if spec.role != "mixed":
                raise InputError(
                    "disaggregated prefill/decode pools are not simulated yet",
                    field=f"pools.{spec.name}.role",
                )
            gpu, model = gpu_spec(spec.gpu), model_spec(spec.model)
            constants = Constants.fitted(spec.engine.calibration)
            perf = PerfModel(gpu, model, spec.tp, spec.dtype, constants)
            blocks = kv_blocks(spec, perf)
            max_len = spec.engine.max_model_len or model.max_position_embeddings
            replicas = [
                Replica(
                    env,
                    f"{spec.name}-{i}",
                    spec.name,
                    perf,
                    spec.engine,
                    blocks,
                    self._finished,
                    fast,
                    max_len,
                )
                for i in range(spec.replicas)
            ]
            price = (spec.price_per_gpu_hour or gpu.price_per_gpu_hour) * spec.tp
            self.pools[spec.name] = Pool(spec, perf, replicas, price)
            self.replicas |= {r.name: r for r in replicas}
        self._released = 0
        self._done_at: dict[int, float] = {}
        self._children: dict[int, Request] = {}
        self._on_progress: Callable[[float, int], None] | None = None

    # ------------------------------------------------------------------ running

    def run(self, on_progress: Callable[[float, int], None] | None = None) -> Recorder:
        """Run until every request has completed or been rejected."""
        self._on_progress = on_progress
        self.env.process(self._arrivals(iter(self.scenario.requests())))
        self.env.run()
        self.recorder.close(self.env.now, self)
        return self.recorder

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

    def _release(self, req: Request, at: float):
        yield self.env.timeout(max(0.0, at - self.env.now))
        self._dispatch(req)

    def _dispatch(self, req: Request) -> None:
        self.recorder.released(req, self.env.now)
        if self._on_progress is not None and self.recorder.requests_in % 1000 == 0:
            self._on_progress(self.env.now, self.recorder.requests_in)
        decision = self.router.route(RequestView.of(req), self.view())
        if decision.replica is None:
            self.recorder.rejected(req, self.env.now, decision.reject_reason or "rejected")
            self._completed(req.id, req.session_id is not None)
            return
        replica = self.replicas.get(decision.replica)
        if replica is None:
            raise RuntimeError(f"router chose unknown replica {decision.replica!r}")
        replica.submit(req)

    def _finished(self, seq: Seq, replica: Replica) -> None:
        outcome = self.recorder.finished(seq, replica, self.env.now)
        observe = getattr(self.router, "observe", None)
        if observe is not None and outcome is not None:
            observe(outcome)
        self._completed(seq.req.id, seq.req.session_id is not None)

    def _completed(self, rid: int, session: bool) -> None:
        child = self._children.pop(rid, None)
        if child is not None:
            self.env.process(self._release(child, self.env.now + child.think_s))
        elif session:  # only requests in a session (or a closed-loop user) have followers
            self._done_at[rid] = self.env.now

    def view(self) -> FleetView:
        return FleetView(
            pools=tuple(
                PoolView(
                    name=name,
                    role=p.spec.role,
                    model=p.spec.model,
                    gpu=p.spec.gpu,
                    replicas=tuple(r.view() for r in p.replicas),
                    price_per_replica_hour=p.price_per_replica_hour,
                )
                for name, p in self.pools.items()
            ),
            now=self.env.now,
        )


__all__ = ["Outcome", "Simulation", "kv_blocks"]
