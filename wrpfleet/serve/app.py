"""The Ray Serve application: the simulator's router over live replicas.

One deployment per pool, whose replicas run an engine (the twin here; vLLM on GPU
machines) and report running and waiting requests, tokens in flight, KV blocks
and energy as Ray Serve routing stats; an OpenAI-compatible ingress (the same
layer as ``wrpfleet twin``) that builds a `FleetView` from those stats and calls
the scenario's `wrpfleet.router` policy object, the one the simulator calls, to
choose the pool and the replica.

The replica choice reaches Ray Serve through its own request-routing hook: each
pool's handle routes with `PoolRouter`, a custom ``RequestRouter`` that puts the
policy's replica first and keeps the in-flight requests this ingress sent to each
replica current (Serve refreshes routing stats only every
``request_routing_stats_period_s``: without the counts, a burst would see one
stale view and go to one replica). The routers live in the ingress's process,
where its handles route, so the ingress reads their views directly.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

from ray import serve
from ray.serve.config import AutoscalingConfig, AutoscalingPolicy, RequestRouterConfig
from ray.serve.handle import DeploymentHandle
from ray.serve.request_router import PendingRequest, ReplicaID, RequestRouter, RunningReplica

from wrpfleet.autoscale import build_autoscaler
from wrpfleet.config import AutoscalerSpec, RouterSpec, Scenario
from wrpfleet.pool.spec import FleetSpec, PoolSpec
from wrpfleet.router import build_router
from wrpfleet.serve.energy import Attribution, EnergyMeter
from wrpfleet.serve.guard import Guard, read_keys
from wrpfleet.serve.http import create_app
from wrpfleet.serve.twin import TokenEvent, TwinEngine
from wrpfleet.types import FleetView, PoolMetrics, ReplicaView, Request, RequestView

STATS_PERIOD_S = 0.5


def routers() -> dict[str, PoolRouter]:
    """Each pool's handle router in this (the ingress's) process, by pool. Looked up in
    the imported module at call time: Serve ships router classes by value, and a
    module-level dict captured with them would be a copy per router."""
    module = importlib.import_module(__name__)
    if not hasattr(module, "_ROUTERS"):
        module._ROUTERS = {}
    return module._ROUTERS


class PoolRouter(RequestRouter):
    """Puts the replica the policy chose first; counts what this process has in flight."""

    def initialize_state(self, pool: str = "") -> None:
        self.pool = pool
        self.flights: dict[str, tuple[str, int]] = {}  # Serve request -> (replica, tokens)
        # Decided by the ingress, not yet handed to Serve: counted from the decision on,
        # so that concurrent decisions see each other.
        self.expected: dict[int, tuple[str, int]] = {}  # wrpfleet request -> (replica, tokens)
        routers()[pool] = self

    def expect(self, request_id: int, replica: str, tokens: int) -> None:
        self.expected[request_id] = (replica, tokens)

    def views(self) -> list[ReplicaView]:
        local: dict[str, list[int]] = {}
        for uid, tokens in [*self.flights.values(), *self.expected.values()]:
            entry = local.setdefault(uid, [0, 0])
            entry[0] += 1
            entry[1] += tokens
        out = []
        for rid, replica in self.curr_replicas.items():
            st = replica.routing_stats or {}
            n, tokens = local.get(rid.unique_id, (0, 0))
            running = int(st.get("running", 0))
            out.append(
                ReplicaView(
                    id=rid.unique_id,
                    pool=self.pool,
                    state="ready",
                    running=running,
                    waiting=max(int(st.get("waiting", 0)), n - running),
                    tokens_in_flight=max(int(st.get("tokens_in_flight", 0)), tokens),
                    kv_used_blocks=int(st.get("kv_used_blocks", 0)),
                    kv_total_blocks=int(st.get("kv_total_blocks", 0)),
                )
            )
        return out

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        wanted = pending_request.kwargs.get("replica") if pending_request else None
        ranked = sorted(candidate_replicas, key=lambda r: r.replica_id.unique_id != wanted)
        if pending_request is not None and ranked:
            self._fly(pending_request, ranked[0].replica_id)
        return [[r] for r in ranked]

    def _fly(self, pending: PendingRequest, rid: ReplicaID) -> None:
        req = pending.kwargs.get("request", {})
        self.expected.pop(req.get("id"), None)
        tokens = int(req.get("input_tokens", 0)) + int(req.get("output_tokens", 0))
        self.flights[pending.metadata.internal_request_id] = (rid.unique_id, tokens)

    def on_request_routed(
        self, pending_request: PendingRequest, replica_id: ReplicaID, result: Any
    ) -> None:
        self._fly(pending_request, replica_id)

    def on_request_completed(self, replica_id: ReplicaID, internal_request_id: str) -> None:
        self.flights.pop(internal_request_id, None)


class PoolReplica:
    """A replica of a pool: one engine, its requests streamed token by token."""

    def __init__(self, pool: dict[str, Any], speed: float = 1.0) -> None:
        self.spec = PoolSpec(**pool)
        self.rid = serve.get_replica_context().replica_id.unique_id
        self.engine = TwinEngine(self.spec, name=self.rid, speed=speed)
        self.arrived = 0  # requests taken, ever (the autoscaler derives a rate)
        # A twin's GPUs (if any) do not do its work: its energy is always estimated.
        self.meter = EnergyMeter(self.spec.tp, self.engine.energy_j, use_nvml=False)
        self.attribution = Attribution()
        self._metered = 0.0

    def _close_interval(self) -> None:
        joules = self.meter.joules()
        self.attribution.close_interval(joules - self._metered)
        self._metered = joules

    async def ping(self) -> str:
        return self.rid

    async def generate(
        self, request: dict[str, Any], replica: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        self.arrived += 1
        req = Request(**{**request, "prefix_blocks": tuple(request.get("prefix_blocks", ()))})
        yield {"replica": self.rid}
        async for ev in self.engine.generate(req):
            item = {"index": ev.index, "t": ev.t, "finished": ev.finished, "error": ev.error}
            if ev.finished:
                self._close_interval()
                item["energy_j"] = self.attribution.pop(req.id)
                item["energy_source"] = self.meter.source
            else:  # the prompt with the first token, then a token a step
                self.attribution.processed(req.id, req.input_tokens + 1 if ev.index == 1 else 1)
            yield item

    def _load(self) -> dict[str, int]:
        """What the engine reports, as vLLM's metrics do: requests and KV blocks."""
        v = self.engine.view()
        return {
            "running": v.running,
            "waiting": v.waiting,
            "tokens_in_flight": v.tokens_in_flight,
            "kv_used_blocks": v.kv_used_blocks,
            "kv_total_blocks": v.kv_total_blocks,
        }

    async def record_autoscaling_stats(self) -> dict[str, float]:
        return {**self._load(), "arrived": self.arrived}

    async def record_routing_stats(self) -> dict[str, Any]:
        self._close_interval()
        load = self._load()
        return {**load, "energy_j": self.meter.joules(), "energy_source": self.meter.source}


class ServeAutoscaler:
    """Ray Serve's custom autoscaling-policy hook calling the `wrpfleet.autoscale`
    object the simulator uses. Serve calls it many times a second in its controller;
    the policy decides every ``interval_s``, on a `PoolView` built from the replicas'
    autoscaling stats, with the arrival rate over the last interval. Serve's own
    delays are zero: the policy's own hysteresis applies, as in simulation."""

    def __init__(self, pool: dict[str, Any], autoscaler: dict[str, Any]) -> None:
        self.spec = PoolSpec.model_validate(pool)
        self.config = AutoscalerSpec.model_validate(autoscaler)
        self.policy = build_autoscaler(self.config.policy, self.config.params)
        self.last: tuple[float, float, int] | None = None  # (time, arrivals, target)

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        now = ctx.current_time if ctx.current_time is not None else time.time()
        metrics = ctx.aggregated_metrics or {}
        arrived = sum(metrics.get("arrived", {}).values())
        if self.last is not None and now - self.last[0] < self.config.interval_s:
            return self.last[2], ctx.policy_state
        dt = now - self.last[0] if self.last else self.config.interval_s
        rate = max(0.0, arrived - self.last[1]) / dt if self.last else 0.0

        def stat(name: str, rid: Any) -> int:
            values = metrics.get(name, {})
            value = values.get(rid, values.get(getattr(rid, "unique_id", rid), 0))
            return int(value or 0)

        replicas = tuple(
            ReplicaView(
                id=str(rid),
                pool=self.spec.name,
                state="ready",
                running=stat("running", rid),
                waiting=stat("waiting", rid),
                tokens_in_flight=0,
                kv_used_blocks=stat("kv_used_blocks", rid),
                kv_total_blocks=stat("kv_total_blocks", rid),
            )
            for rid in ctx.running_replicas
        )
        lo, hi = self.spec.bounds
        view = self.spec.view(replicas, ctx.target_num_replicas, 0.0)
        decision = self.policy.decide(view, PoolMetrics(rate, dt), now)
        target = max(lo, min(hi, decision.target))
        self.last = (now, arrived, target)
        return target, {**ctx.policy_state, "reason": decision.reason}


class Ingress:
    """The OpenAI layer over the fleet: the scenario's router picks pool and replica."""

    def __init__(
        self,
        fleet: dict[str, Any],
        router: dict[str, Any],
        guard: dict[str, Any] | None = None,
        **pools: DeploymentHandle,
    ) -> None:
        spec = FleetSpec.model_validate(fleet)
        policy = RouterSpec.model_validate(router)
        self.router = build_router(policy.policy, policy.params)
        self.handles = {name: h.options(stream=True) for name, h in pools.items()}
        self.specs = {p.name: p for p in spec.pools}
        self.models = list(dict.fromkeys(p.model for p in spec.pools))
        self.records: list[dict[str, Any]] = []
        g = dict(guard or {})
        keys = read_keys(g.pop("api_keys_env", None), g.pop("api_keys_file", None))
        self.guard = Guard(keys, **g)
        self._warm = False
        self._ids = itertools.count(1)

    def __serve_build_asgi_app__(self):
        app = create_app(self, self.guard)

        @app.get("/v1/wrpfleet/records")
        async def records() -> list[dict[str, Any]]:
            return self.records

        @app.get("/v1/wrpfleet/fleet")
        async def fleet() -> dict[str, Any]:
            """The view the router decides on now."""
            await self._warm_up()
            return dataclasses.asdict(self.fleet())

        return app

    async def _warm_up(self) -> None:
        """Route one call through each pool's handle, so each has its router here."""
        if not self._warm:
            for handle in self.handles.values():
                await handle.options(stream=False).ping.remote()
            self._warm = True

    def fleet(self) -> FleetView:
        pools = []
        for name, spec in self.specs.items():
            router = routers().get(name)
            views = tuple(router.views()) if router else ()
            pools.append(spec.view(views, len(views) or spec.replicas, spec.price_per_replica_hour))
        return FleetView(pools=tuple(pools), now=0.0)

    async def generate(self, request: Request) -> AsyncIterator[TokenEvent]:
        await self._warm_up()
        decision = self.router.route(RequestView.of(request), self.fleet())
        if decision.replica is None:
            reason = decision.reject_reason or "rejected"
            yield TokenEvent(0, 0.0, finished=True, error=reason, status=503)
            return
        record = {
            "id": request.id,
            "pool": decision.pool,
            "chosen": decision.replica,
            "input_tokens": request.input_tokens,
            "output_tokens": request.output_tokens,
        }
        payload = {
            "id": request.id,
            "arrival_s": 0.0,
            "input_tokens": request.input_tokens,
            "output_tokens": request.output_tokens,
            "prefix_blocks": list(request.prefix_blocks),
            "block_tokens": request.block_tokens,
        }
        tokens = request.input_tokens + request.output_tokens
        routers()[decision.pool].expect(request.id, decision.replica, tokens)
        stream = self.handles[decision.pool].generate.remote(payload, replica=decision.replica)
        try:
            async for item in self._items(stream, record):
                yield item
        finally:
            routers()[decision.pool].expected.pop(request.id, None)  # if Serve never took it

    async def _items(self, stream: Any, record: dict[str, Any]) -> AsyncIterator[TokenEvent]:
        """The replica's events; if the replica dies on the way, one last event with the
        error, so the caller's stream ends instead of hanging, and the record stays."""
        try:
            async for ev in self._events(stream, record):
                yield ev
        except Exception as e:  # the replica died or Serve gave up on it
            record["error"] = f"replica {record.get('replica', record['chosen'])} failed: {e!r}"
            record.setdefault("energy_j", None)
            self.records.append(record)
            yield TokenEvent(0, 0.0, finished=True, error=record["error"][:500], status=502)

    async def _events(self, stream: Any, record: dict[str, Any]) -> AsyncIterator[TokenEvent]:
        async for item in stream:
            if "replica" in item:
                record["replica"] = item["replica"]
                continue
            ev = TokenEvent(item["index"], item["t"], item["finished"], item["error"])
            if ev.finished:
                record["error"] = ev.error
                record["energy_j"] = item.get("energy_j")
                record["energy_source"] = item.get("energy_source")
                self.records.append(record)
            yield ev

    async def metrics(self) -> list[str]:
        lines = []
        for view in self.fleet().pools:
            for r in view.replicas:
                labels = f'pool="{view.name}",replica="{r.id}",engine="twin"'
                lines.append(f"vllm:num_requests_running{{{labels}}} {r.running}")
                lines.append(f"vllm:num_requests_waiting{{{labels}}} {r.waiting}")
                lines.append(f"vllm:gpu_cache_usage_perc{{{labels}}} {r.kv_usage}")
        for pool, router in sorted(routers().items()):
            for rid, replica in router.curr_replicas.items():
                st = replica.routing_stats or {}
                if "energy_j" in st:
                    labels = (
                        f'pool="{pool}",replica="{rid.unique_id}",'
                        f'source="{st.get("energy_source", "estimated")}"'
                    )
                    lines.append(f"wrpfleet:energy_joules_total{{{labels}}} {st['energy_j']}")
        return lines


def build_app(scenario: Scenario, speed: float = 1.0, guard: dict[str, Any] | None = None):
    """The application for a scenario's pools and router (twin replicas). ``guard``
    configures the ingress's checks: ``api_keys_env`` (a variable in the ingress's
    environment), ``api_keys_file``, ``rate_per_s``, ``burst``, ``max_body_bytes``,
    ``max_prompt_tokens``."""
    pools = {}
    for spec in scenario.pools:
        scaling: dict[str, Any] = {"num_replicas": spec.replicas}
        lo, hi = spec.bounds
        if scenario.autoscaler is not None and lo < hi:
            scaling = {
                "autoscaling_config": AutoscalingConfig(
                    min_replicas=lo,
                    max_replicas=hi,
                    initial_replicas=spec.replicas,
                    upscale_delay_s=0.0,
                    downscale_delay_s=0.0,
                    look_back_period_s=max(1.0, scenario.autoscaler.interval_s),
                    policy=AutoscalingPolicy(
                        policy_function="wrpfleet.serve.app:ServeAutoscaler",
                        policy_kwargs={
                            "pool": spec.model_dump(mode="json", by_alias=True),
                            "autoscaler": scenario.autoscaler.model_dump(mode="json"),
                        },
                    ),
                )
            }
        deployment = serve.deployment(
            PoolReplica,
            name=f"pool-{spec.name}",
            **scaling,
            ray_actor_options={"num_cpus": 0},
            max_ongoing_requests=max(spec.engine.max_num_seqs * 4, 64),
            request_router_config=RequestRouterConfig(
                request_router_class="wrpfleet.serve.app.PoolRouter",
                request_router_kwargs={"pool": spec.name},
                request_routing_stats_period_s=STATS_PERIOD_S,
            ),
        )
        pools[spec.name] = deployment.bind(spec.model_dump(mode="json", by_alias=True), speed)
    ingress = serve.deployment(
        serve.ingress()(Ingress), name="ingress", ray_actor_options={"num_cpus": 0}
    )
    fleet = scenario.fleet.model_dump(mode="json", by_alias=True)
    router = scenario.router.model_dump(mode="json", by_alias=True)
    return ingress.bind(fleet, router, guard, **pools)


def app_builder(args: dict[str, Any]):
    """``serve run serve_app/twin.yaml``: the application of the scenario named in the
    config's ``args`` (``scenario``: a path; ``speed``: the twins' clock; ``guard``:
    as `build_app` takes it)."""
    from wrpfleet.config import load_scenario

    return build_app(
        load_scenario(args["scenario"]), float(args.get("speed", 1.0)), args.get("guard")
    )
