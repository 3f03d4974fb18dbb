"""One replica: a vLLM-style engine as a simpy process.

Each engine step mirrors vLLM's scheduler: running sequences first (decodes take one
token, unfinished prefills a chunk), then waiting ones in order while the token
budget (``max_num_batched_tokens``), the sequence limit (``max_num_seqs``) and the
KV blocks allow. When a running sequence needs a block and none is left, the most
recently admitted one is preempted and later recomputed. Prompt blocks are
published to the prefix cache when their prefill completes.

Speed: a batch of decodes with nothing to admit is *stable* until the first
completion, the first arrival or the step at which KV blocks run out. Fast mode
advances such a batch over all those steps at once, with per-step times computed
as one numpy array, and stops early at the step boundary after an arrival; the
reference mode takes one simpy event per step. Both give the same results.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import simpy

from wrpfleet.pool.perf import Batch, PerfModel
from wrpfleet.pool.spec import EngineSpec
from wrpfleet.sim.kv import KVCache
from wrpfleet.types import ReplicaView, Request

PRIORITY = {"interactive": 0, "standard": 1, "batch": 2}
TIMELINE_S = 0.5


@dataclass(eq=False, slots=True)
class Seq:
    """A request inside an engine, in vLLM's terms (computed tokens, not yet sampled)."""

    req: Request
    arrived: float
    prompt_len: int  # tokens to (re)compute before the next token is sampled
    computed: int = 0
    generated: int = 0
    blocks: int = 0  # private KV blocks
    pinned: tuple[int, ...] = ()  # cached prefix blocks in use
    pinned_blocks: int = 0
    prefilling: bool = True
    scheduled: float | None = None
    first_token: float | None = None
    finished: float | None = None
    preemptions: int = 0
    cached_tokens: int = 0
    energy_j: float = 0.0
    rejected: str | None = None
    handoff: Callable[[Seq], None] | None = None  # prefill only: hand the KV on when done
    prefilled_on: str | None = None  # the prefill replica, for disaggregated serving

    @property
    def held(self) -> int:
        return self.blocks + self.pinned_blocks


@dataclass(slots=True)
class _Phase:
    """A stable decode batch being advanced in one go (fast mode)."""

    seqs: list[Seq]
    start: float
    ends: np.ndarray  # end time of each step
    energy: np.ndarray  # joules of each step, whole replica
    computed: np.ndarray  # tokens computed per sequence at the phase start
    held: np.ndarray  # blocks held per sequence at the phase start


@dataclass
class Stats:
    busy_s: float = 0.0
    active_energy_j: float = 0.0
    steps: int = 0
    events: int = 0
    timeline: list[tuple] = field(default_factory=list)


class Replica:
    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        pool: str,
        perf: PerfModel,
        engine: EngineSpec,
        kv_blocks: int,
        on_finish: Callable[[Seq, Replica], None],
        fast: bool = True,
        max_model_len: int | None = None,
        state: str = "ready",
    ) -> None:
        self.env, self.name, self.pool, self.perf, self.spec = env, name, pool, perf, engine
        self.kv = KVCache(kv_blocks, engine.block_size, engine.enable_prefix_caching)
        self.on_finish = on_finish
        self.fast = fast
        self.max_model_len = max_model_len
        self.waiting: deque[Seq] = deque()
        self.running: list[Seq] = []
        self.stats = Stats()
        self.state = state  # starting -> ready -> draining -> retired
        self.born = env.now
        self.retired: float | None = None
        self._wake: simpy.Event | None = None
        self._phase: _Phase | None = None
        self._head_cached = False
        self._tokens = 0  # prompt + output tokens of every request here
        self._version = 0  # bumped on every change of state a view shows
        self._view_version = -1
        self._view_until = 0.0
        self._view: ReplicaView | None = None
        self._freed: simpy.Event | None = None
        self.process = env.process(self._run())

    # ------------------------------------------------------------------ interface

    def submit(self, req: Request, arrived: float | None = None) -> Seq:
        """Take a request; ``arrived`` is when it reached the fleet (default: now)."""
        seq = Seq(req, self.env.now if arrived is None else arrived, req.input_tokens)
        total = req.input_tokens + req.output_tokens
        need = self.kv.blocks_for(total)
        if self.max_model_len and total > self.max_model_len:
            seq.rejected = (
                f"prompt + output ({total} tokens) exceeds max_model_len {self.max_model_len}"
            )
        elif need > self.kv.total:
            seq.rejected = f"needs {need} KV blocks, the replica has {self.kv.total}"
        elif not self.spec.enable_chunked_prefill and total > self.spec.max_num_batched_tokens:
            seq.rejected = (
                f"without chunked prefill, prompt + output ({total} tokens) must fit "
                f"max_num_batched_tokens {self.spec.max_num_batched_tokens}"
            )
        if seq.rejected:
            seq.finished = self.env.now
            self.on_finish(seq, self)
            return seq
        self._tokens += total
        self._version += 1
        if self.spec.scheduling == "priority":
            key = PRIORITY.get(req.slo_class, 1)
            i = next(
                (i for i, s in enumerate(self.waiting) if PRIORITY.get(s.req.slo_class, 1) > key),
                len(self.waiting),
            )
            self.waiting.insert(i, seq)
        else:
            self.waiting.append(seq)
        self._nudge()
        return seq

    def _nudge(self) -> None:
        """Wake the loop if it waits (idle, or in a fast phase that must stop early)."""
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def set_state(self, state: str) -> None:
        """The fleet starts, readies and drains replicas; a drained one retires when idle."""
        self.state = state
        self._version += 1
        self._sample(self.perf.idle_power_w, force=True)
        if state == "draining":
            self._nudge()

    def view(self) -> ReplicaView:
        """The replica's state now. Rebuilt only when it changed: a router asks for every
        replica's view on every request. Inside a fast phase the view also changes
        at each step boundary (KV blocks grow), so it is valid until the next one."""
        now = self.env.now
        if self._version == self._view_version and now < self._view_until:
            return self._view
        used, until = self.kv.used, float("inf")
        p = self._phase
        if p is not None:
            done = int(np.searchsorted(p.ends, now, side="right"))
            if done > 0:  # the step in progress has its blocks already
                used += self._new_blocks(p.computed, p.held, done)
            if done < len(p.ends):
                until = float(p.ends[done])
        self._view = ReplicaView(
            id=self.name,
            pool=self.pool,
            state=self.state,
            running=len(self.running),
            waiting=len(self.waiting),
            tokens_in_flight=self._tokens,
            kv_used_blocks=used,
            kv_total_blocks=self.kv.total,
        )
        self._view_version, self._view_until = self._version, until
        return self._view

    # ------------------------------------------------------------------ the loop

    def _run(self):
        env = self.env
        while True:
            if not self.running and not self.waiting:
                self._sample(self.perf.idle_power_w, force=True)
                if self.state == "draining":
                    self.state, self.retired = "retired", env.now
                    self._version += 1
                    self._sample(0.0, force=True)
                    return
                self._wake = env.event()
                yield self._wake
                self._wake = None
                continue
            scheduled, batch, admitted = self._schedule()
            if not scheduled:
                # Nothing fits although the engine is otherwise empty: cannot happen once
                # submit() rejected oversize requests; guard against a silent stall.
                raise RuntimeError(f"{self.name}: scheduler made no progress")
            stable = (
                self.fast
                and not admitted
                and not self._head_cached
                and batch.prefill_seqs == 0
                and len(scheduled) == len(self.running)
            )
            if stable:
                yield from self._advance_stable()
                continue
            t, power = self.perf.step(batch)
            t = float(t)
            energy = float(power) * t
            self.stats.events += 1
            self._sample(energy / t)
            yield env.timeout(t)
            self._account(t, energy)
            self._apply(scheduled, batch, energy)
            self._version += 1

    def _schedule(self) -> tuple[list[tuple[Seq, int]], Batch, bool]:
        """One vLLM scheduler step: which sequences run and with how many tokens."""
        kv, spec = self.kv, self.spec
        budget = spec.max_num_batched_tokens
        scheduled: list[tuple[Seq, int]] = []
        bs = kv.block_size
        i = 0
        while i < len(self.running) and budget > 0:
            s = self.running[i]
            n = 1 if not s.prefilling else min(s.prompt_len - s.computed, budget)
            need = -(-(s.computed + n) // bs) - s.blocks - s.pinned_blocks
            if need <= 0:  # the common case: a decode inside its last block
                scheduled.append((s, n))
                budget -= n
                i += 1
                continue
            while not kv.allocate(need):
                victim = self.running.pop()
                self._preempt(victim)
                if victim is s:
                    break
            else:
                s.blocks += need
                scheduled.append((s, n))
                budget -= n
                i += 1
        admitted = False
        self._head_cached = False  # a waiting head holding cache hits: evictions change it
        while self.waiting and budget > 0 and len(self.running) < spec.max_num_seqs:
            s = self.waiting[0]
            if s.computed == 0:
                self._lookup_prefix(s)
            n = s.prompt_len - s.computed if s.prefilling else 1  # 1: KV received, decode
            if n > budget:
                if not spec.enable_chunked_prefill:
                    break
                n = budget
            need = kv.blocks_for(s.computed + n) - s.held
            if not kv.allocate(need):
                self._drop_prefix(s)
                break
            s.blocks += max(need, 0)
            self.waiting.popleft()
            self.running.append(s)
            if s.scheduled is None:
                s.scheduled = self.env.now
            scheduled.append((s, n))
            budget -= n
            admitted = True
        self._version += 1
        return scheduled, self._batch(scheduled), admitted

    def _cacheable(self, req: Request) -> tuple[int, ...]:
        """The prompt's full content blocks, if this engine can cache them (caching on,
        content blocks a whole number of engine blocks)."""
        bt = req.block_tokens
        if not self.kv.caching or not req.prefix_blocks or bt % self.kv.block_size:
            return ()
        return req.prefix_blocks[: req.input_tokens // bt]

    def _lookup_prefix(self, s: Seq) -> None:
        """Reuse the longest cached prefix (vLLM recomputes at least the last token)."""
        req, kv = s.req, self.kv
        ids = self._cacheable(req)
        if not ids:
            return
        bt = req.block_tokens
        hits = min(kv.hits(ids), (s.prompt_len - 1) // bt)
        if hits:
            ids = req.prefix_blocks[:hits]
            kv.pin(ids, bt // kv.block_size)
            s.pinned, s.pinned_blocks = ids, hits * bt // kv.block_size
            s.computed = hits * bt
            if not s.preemptions:  # hits count once per request, not per recompute
                s.cached_tokens = hits * bt

    def _drop_prefix(self, s: Seq) -> None:
        """Let go of cached blocks a sequence that could not be admitted had pinned."""
        if s.pinned:
            self.kv.unpin(s.pinned)
            if not s.preemptions:
                s.cached_tokens = 0
            s.pinned, s.pinned_blocks, s.computed = (), 0, 0
            self._head_cached = True

    @staticmethod
    def _batch(scheduled: list[tuple[Seq, int]]) -> Batch:
        b = Batch()
        for s, n in scheduled:
            if s.prefilling:
                b.prefill_tokens += n
                b.prefill_seqs += 1
                b.prefill_attn += n * (s.computed + (n + 1) / 2)
                b.prefill_kv_read += s.computed
            else:
                b.decode_seqs += 1
                b.decode_ctx += s.computed + 1
        return b

    def _apply(self, scheduled: list[tuple[Seq, int]], batch: Batch, energy: float) -> None:
        now = self.env.now
        tokens = batch.prefill_tokens + batch.decode_seqs
        for s, n in scheduled:
            s.energy_j += energy * n / tokens
            s.computed += n
            if s.prefilling:
                if s.computed < s.prompt_len:
                    continue
                s.prefilling = False
                if s.first_token is None:
                    s.first_token = now
                self._publish(s)
                if s.handoff is not None and s.req.output_tokens > 1:
                    s.generated += 1
                    self.running.remove(s)  # its KV stays here until the transfer ends
                    self._version += 1
                    s.handoff(s)
                    continue
            s.generated += 1
            if s.generated >= s.req.output_tokens:
                self._finish(s)

    def _publish(self, s: Seq) -> None:
        """Share the prompt's blocks once its prefill is done."""
        self._share(s, self._cacheable(s.req)[len(s.pinned) :])

    def _share(self, s: Seq, ids: tuple[int, ...]) -> None:
        """Turn the sequence's private blocks holding these content blocks into cached,
        shared ones that it keeps pinned."""
        if ids:
            given = self.kv.publish(ids, s.req.block_tokens // self.kv.block_size)
            s.blocks -= given
            s.pinned += ids
            s.pinned_blocks += given

    def _finish(self, s: Seq) -> None:
        self._publish_answer(s)
        self.running.remove(s)
        self.kv.unpin(s.pinned)
        self.kv.release(s.blocks)
        s.blocks = s.pinned_blocks = 0
        s.pinned = ()
        s.finished = self.env.now
        self._tokens -= s.req.input_tokens + s.req.output_tokens
        self._version += 1
        self._blocks_freed()
        self.on_finish(s, self)

    def release(self, s: Seq) -> None:
        """A handed-off sequence's KV has been transferred: free it here."""
        self.kv.unpin(s.pinned)
        self.kv.release(s.blocks)
        s.blocks = s.pinned_blocks = 0
        s.pinned = ()
        self._tokens -= s.req.input_tokens + s.req.output_tokens
        self._version += 1
        self._blocks_freed()

    def blocks_freed(self) -> simpy.Event:
        """An event that fires the next time this replica frees KV blocks."""
        if self._freed is None or self._freed.triggered:
            self._freed = self.env.event()
        return self._freed

    def _blocks_freed(self) -> None:
        if self._freed is not None and not self._freed.triggered:
            self._freed.succeed()

    def reserve(self, prefilled: Seq) -> Seq | None:
        """Decode side: blocks for a prefilled sequence's KV, taken now so the transfer
        can land; None when they are not free yet."""
        kv = self.kv
        need = kv.blocks_for(prefilled.computed)
        if self.state != "ready" or not kv.allocate(need):
            return None
        s = Seq(
            prefilled.req,
            prefilled.arrived,
            prefilled.prompt_len,
            computed=prefilled.computed,
            generated=prefilled.generated,
            blocks=need,
            prefilling=False,
            scheduled=prefilled.scheduled,
            first_token=prefilled.first_token,
            preemptions=prefilled.preemptions,
            cached_tokens=prefilled.cached_tokens,
            energy_j=prefilled.energy_j,
            prefilled_on=prefilled.prefilled_on,
        )
        self._tokens += s.req.input_tokens + s.req.output_tokens
        self._version += 1
        return s

    def receive(self, s: Seq) -> None:
        """Decode side: the KV has landed; the sequence waits for a decode slot."""
        self.waiting.append(s)
        self._version += 1
        self._nudge()

    def _publish_answer(self, s: Seq) -> None:
        """Cache the answer's full blocks for the next turn, as vLLM caches generated
        blocks: only when the whole prompt is cached, so the ids chain on."""
        req = s.req
        prompt = self._cacheable(req)
        if not req.output_blocks or not prompt or len(s.pinned) != len(prompt):
            return
        n = min(len(req.output_blocks), s.computed // req.block_tokens - len(prompt))
        if n > 0:
            self._share(s, req.output_blocks[:n])

    def _preempt(self, s: Seq) -> None:
        """Preemption by recompute: drop its KV, requeue it first, redo prompt + output."""
        self.kv.unpin(s.pinned)
        self.kv.release(s.blocks)
        s.blocks = s.pinned_blocks = 0
        s.pinned = ()
        s.computed = 0
        s.prompt_len = s.req.input_tokens + s.generated
        s.prefilling = True
        s.preemptions += 1
        self.waiting.appendleft(s)

    def _sample(self, power_w: float, force: bool = False) -> None:
        """A timeline row, at most one per TIMELINE_S of simulated time (bounded output)."""
        st, now = self.stats, self.env.now
        rows = st.timeline
        if force or not rows or now - rows[-1][0] >= TIMELINE_S:
            energy = st.active_energy_j + (now - st.busy_s) * self.perf.idle_power_w
            rows.append(
                (
                    now,
                    self.state,
                    len(self.running),
                    len(self.waiting),
                    self.kv.used,
                    power_w,
                    energy,
                )
            )

    def _account(self, t: float, energy: float, steps: int = 1) -> None:
        st = self.stats
        st.busy_s += t
        st.active_energy_j += energy
        st.steps += steps

    # ------------------------------------------------------------------ fast mode

    def _advance_stable(self):
        """Advance a stable decode batch over many steps; its first step is allocated."""
        env, kv = self.env, self.kv
        seqs = list(self.running)
        computed = np.fromiter((s.computed for s in seqs), dtype=np.int64, count=len(seqs))
        held = np.fromiter((s.held for s in seqs), dtype=np.int64, count=len(seqs))
        left = np.fromiter(
            (s.req.output_tokens - s.generated for s in seqs), dtype=np.int64, count=len(seqs)
        )
        steps = int(left.min())
        # Steps until the free and evictable blocks cannot cover the batch's growth.
        available = kv.free + kv.evictable_blocks
        if steps > 1 and self._new_blocks(computed, held, steps - 1) > available:
            lo, hi = 0, steps - 1  # new_blocks(lo) fits, new_blocks(hi) does not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self._new_blocks(computed, held, mid) <= available:
                    lo = mid
                else:
                    hi = mid
            steps = lo + 1
        b = len(seqs)
        ctx = float(computed.sum() + b) + b * np.arange(steps, dtype=float)
        batch = Batch(decode_seqs=b, decode_ctx=ctx)
        times, power = self.perf.step(batch)
        times = np.broadcast_to(np.asarray(times, dtype=float), (steps,))
        energy = np.broadcast_to(np.asarray(power, dtype=float), (steps,)) * times
        ends = env.now + np.cumsum(times)
        self._phase = _Phase(seqs, env.now, ends, energy, computed, held)
        self.stats.events += 1
        self._sample(float(energy.sum() / times.sum()))
        self._wake = env.event()
        yield env.timeout(float(ends[-1]) - env.now) | self._wake
        done = steps
        if self._wake.triggered and env.now < ends[-1]:
            # An arrival: it joins at the first step boundary after it.
            done = int(np.searchsorted(ends, env.now, side="left")) + 1
            self._wake = None
            self.stats.events += 1
            yield env.timeout(float(ends[done - 1]) - env.now)
        self._wake = None
        self._phase = None
        self._version += 1
        self._finish_phase(
            seqs, computed, held, done, float(energy[:done].sum()), float(times[:done].sum())
        )

    def _new_blocks(self, computed: np.ndarray, held: np.ndarray, step: int) -> int:
        """Blocks to allocate so that every sequence can run steps 0..step."""
        bs = self.kv.block_size
        return int(np.maximum(0, -(-(computed + step + 1) // bs) - held).sum())

    def _finish_phase(self, seqs, computed, held, done, energy, busy) -> None:
        bs = self.kv.block_size
        grow = np.maximum(0, -(-(computed + done) // bs) - held)
        self.kv.allocate(int(grow.sum()))
        share = energy / len(seqs)
        self._account(busy, energy, done)
        finished = []
        for s, g in zip(seqs, grow.tolist(), strict=True):
            s.blocks += g
            s.computed += done
            s.generated += done
            s.energy_j += share
            if s.generated >= s.req.output_tokens:
                finished.append(s)
        for s in finished:
            self._finish(s)
