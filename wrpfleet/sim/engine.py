"""One replica: a vLLM-style engine as a simpy process.

Each engine step mirrors vLLM's scheduler: running sequences first (decodes take one
token, an unfinished prefill a chunk), then waiting ones in order while the token
budget (``max_num_batched_tokens``), the sequence limit (``max_num_seqs``) and the
KV blocks allow. When a running sequence needs a block and none is left, the most
recently admitted one is preempted and later recomputed. Prompt blocks are
published to the prefix cache when their prefill completes.

Speed: work per event does not grow with the batch. Every running sequence that
decodes advances one token per step, so the engine keeps them *implicitly*: each
one's computed and generated tokens and energy share are offsets from a step
counter and a cumulative energy-per-token account, and the batch's context sum,
its block-boundary crossings (counted per residue of the offset modulo the block
size) and its next completion (a heap) are kept as aggregates. A sequence is made
explicit only to prefill, finish or be preempted.

A batch of decodes with nothing to admit is *stable* until the first completion,
the first arrival or the step at which KV blocks run out. Fast mode advances such
a batch over all those steps at once, with per-step times computed as one numpy
array, and stops early at the step boundary after an arrival; the reference mode
takes one simpy event per step. Both give the same results.
"""

from __future__ import annotations

import heapq
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
PHASE_MIN_STEPS = 6.0  # fast mode advances stable batches in phases when runs are longer


@dataclass(eq=False, slots=True)
class Seq:
    """A request inside an engine, in vLLM's terms (computed tokens, not yet sampled).

    While a sequence decodes implicitly, ``computed``, ``generated``, ``energy_j`` and
    ``cost_usd`` hold their values at step ``joined`` (accounts ``joined_e``,
    ``joined_c``)."""

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
    cost_usd: float = 0.0  # its share of the replicas' time, at their price
    rejected: str | None = None
    handoff: Callable[[Seq], None] | None = None  # prefill only: hand the KV on when done
    prefilled_on: str | None = None  # the prefill replica, for disaggregated serving
    order: int = 0  # admission number: running order
    joined: int = -1  # step at which it joined the implicit decodes; -1: explicit
    joined_e: float = 0.0
    joined_c: float = 0.0

    @property
    def held(self) -> int:
        return self.blocks + self.pinned_blocks


@dataclass(slots=True)
class _Phase:
    """A stable decode batch being advanced in one go (fast mode)."""

    start: float
    ends: np.ndarray  # end time of each step
    energy: np.ndarray  # joules of each step, whole replica
    crossed: np.ndarray  # blocks the batch has crossed into after steps 1..j
    done: int | None = None  # steps it stops after, when an arrival cut it short


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
        on_change: Callable[[Replica], None] | None = None,
    ) -> None:
        self.env, self.name, self.pool, self.perf, self.spec = env, name, pool, perf, engine
        self.kv = KVCache(kv_blocks, engine.block_size, engine.enable_prefix_caching)
        self.on_finish = on_finish
        self.fast = fast
        self.max_model_len = max_model_len
        self.waiting: deque[Seq] = deque()
        self.running: dict[Seq, None] = {}  # in admission order
        self.stats = Stats()
        self.state = state  # starting -> ready -> draining -> retired
        self.born = env.now
        self.retired: float | None = None
        self._wake: simpy.Event | None = None
        self._phase: _Phase | None = None
        self._head_cached = False
        self._tokens = 0  # prompt + output tokens of every request here
        self.on_change = on_change
        # Called after each step with the sequences that made a token (the twin
        # engine streams them); needs the reference mode, where every step is one.
        self.on_tokens: Callable[[list[Seq], float], None] | None = None
        self._stale = True  # something a view shows changed since the last one
        self.view_until = 0.0  # inside a fast phase, the view is valid until then
        self._view: ReplicaView | None = None
        self._freed: simpy.Event | None = None
        self._admitted = 0
        # Running sequences outside the implicit decodes (a prefill chunk in progress;
        # every one for a step that may preempt), in admission order.
        self._explicit: list[Seq] = []
        # The implicit decodes: step counter, energy per token so far, count, sum of
        # (computed - step), count per residue of that offset, completion heap.
        self._k = 0
        self._e = 0.0
        self._c = 0.0  # cost per token so far (the replica's time at its price)
        self.price_per_s = 0.0  # set by the fleet
        self._n = 0
        self._off = 0
        self._residue = [0] * engine.block_size
        self._heap: list[tuple[int, int, Seq]] = []
        self._away: set[Seq] = set()  # handed off, their KV still here until transferred
        self._incoming: set[Seq] = set()  # blocks reserved here, their KV on the way
        self._stepping = False  # a step is in flight (its blocks are allocated)
        self._run_length = 0  # consecutive stable steps so far
        self._stable_run = float(PHASE_MIN_STEPS)  # their recent average (fast mode)
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
        self._touch()
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
        """Wake the loop if it waits idle; in a fast phase, stop the phase at the first
        step boundary from now, where the scheduler can admit what arrived."""
        wake, p = self._wake, self._phase
        if wake is None or wake.triggered:
            return
        if p is None:
            wake.succeed()
            return
        now = self.env.now
        if p.done is not None or now >= p.ends[-1]:
            return
        p.done = int(np.searchsorted(p.ends, now, side="left")) + 1
        self.stats.events += 1
        self._wake_at(float(p.ends[p.done - 1]) - now, wake)

    def _wake_at(self, delay: float, wake: simpy.Event) -> None:
        """Trigger ``wake`` after ``delay`` unless something triggered it before."""
        self.env.timeout(delay).callbacks.append(lambda _: wake.triggered or wake.succeed())

    def set_state(self, state: str) -> None:
        """The fleet starts, readies and drains replicas; a drained one retires when idle."""
        self.state = state
        self._touch()
        self._sample(self.perf.idle_power_w, force=True)
        if state == "draining":
            self._nudge()

    def view(self) -> ReplicaView:
        """The replica's state now. Rebuilt only when it changed: a router asks for every
        replica's view on every request. Inside a fast phase the KV usage grows at
        the steps where a sequence takes a new block, so the view is valid until then."""
        now = self.env.now
        if not self._stale and now < self.view_until:
            return self._view
        used, until = self.kv.used, float("inf")
        p = self._phase
        if p is not None:
            done = int(np.searchsorted(p.ends, now, side="right"))
            crossed = int(p.crossed[done - 1]) if done > 0 else 0  # the step in progress
            used += crossed  # has its blocks already
            # Valid until the end of the step before the next one that takes a block.
            nxt = int(np.searchsorted(p.crossed, crossed, side="right"))
            if nxt < len(p.ends):
                until = float(p.ends[nxt])
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
        self._stale, self.view_until = False, until
        return self._view

    def _touch(self) -> None:
        """A change a view shows: the cached view is stale; the fleet hears it once."""
        if not self._stale:
            self._stale = True
            if self.on_change is not None:
                self.on_change(self)

    # ------------------------------------------------------------------ the loop

    def _run(self):
        env = self.env
        while True:
            if not self.running and not self.waiting:
                self._sample(self.perf.idle_power_w, force=True)
                if self.state == "draining":
                    self.state, self.retired = "retired", env.now
                    self._touch()
                    self._sample(0.0, force=True)
                    return
                self._wake = env.event()
                yield self._wake
                self._wake = None
                continue
            explicit, batch = self._schedule()
            self._stepping = True
            if not explicit and not self._n:
                # Nothing fits although the engine is otherwise empty: cannot happen once
                # submit() rejected oversize requests; guard against a silent stall.
                raise RuntimeError(f"{self.name}: scheduler made no progress")
            if self.fast and not explicit and not self._explicit and not self._head_cached:
                # A stable batch. Advancing it in one go pays when it stays stable for
                # a few steps; under dense arrivals single steps are cheaper. Either way
                # the results are the same: this only chooses the faster path.
                if self._stable_run >= PHASE_MIN_STEPS:
                    yield from self._advance_stable()
                    continue
                self._run_length += 1
            else:
                self._stable_run += (self._run_length - self._stable_run) / 4
                self._run_length = 0
            t, power = self.perf.step(batch)
            t = float(t)
            energy = float(power) * t
            self.stats.events += 1
            self._sample(energy / t)
            yield env.timeout(t)
            self._account(t, energy)
            self._stepping = False
            self._apply(explicit, batch, energy, t)
            self._touch()

    def _schedule(self) -> tuple[list[tuple[Seq, int]], Batch]:
        """One vLLM scheduler step: which sequences run and with how many tokens. The
        implicit decodes take a token each and, together, the blocks whose boundary
        they cross; if those blocks are not there, preemption follows and every
        running sequence is made explicit for the step, as vLLM walks them in order."""
        kv, spec = self.kv, self.spec
        budget = spec.max_num_batched_tokens
        scheduled: list[tuple[Seq, int]] = []
        if self._n and not kv.allocate(self._residue[-self._k % kv.block_size]):
            self._explicit_all()
        budget -= self._n
        bs = kv.block_size
        running, explicit = self.running, self._explicit
        i = 0
        while i < len(explicit) and budget > 0:
            s = explicit[i]
            n = 1 if not s.prefilling else min(s.prompt_len - s.computed, budget)
            need = -(-(s.computed + n) // bs) - s.blocks - s.pinned_blocks
            if need <= 0:
                scheduled.append((s, n))
                budget -= n
                i += 1
                continue
            while not kv.allocate(need):
                victim = explicit.pop()  # the running tail: explicit ones come last
                del running[victim]
                self._preempt(victim)
                if victim is s:
                    break
            else:
                s.blocks += need
                scheduled.append((s, n))
                budget -= n
                i += 1
        self._head_cached = False  # a waiting head holding cache hits: evictions change it
        while self.waiting and budget > 0 and len(running) < spec.max_num_seqs:
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
            running[s] = None
            explicit.append(s)
            s.order = self._admitted
            self._admitted += 1
            if s.scheduled is None:
                s.scheduled = self.env.now
            scheduled.append((s, n))
            budget -= n
        self._touch()
        return scheduled, self._batch(scheduled)

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

    def _batch(self, scheduled: list[tuple[Seq, int]]) -> Batch:
        n = self._n
        b = Batch(decode_seqs=n, decode_ctx=self._off + n * (self._k + 1))
        for s, t in scheduled:
            if s.prefilling:
                b.prefill_tokens += t
                b.prefill_seqs += 1
                b.prefill_attn += t * (s.computed + (t + 1) / 2)
                b.prefill_kv_read += s.computed
            else:
                b.decode_seqs += 1
                b.decode_ctx += s.computed + 1
        return b

    def _apply(
        self, scheduled: list[tuple[Seq, int]], batch: Batch, energy: float, t: float
    ) -> None:
        now = self.env.now
        tokens = batch.prefill_tokens + batch.decode_seqs
        share, cost = energy / tokens, self.price_per_s * t / tokens
        produced = None
        if self.on_tokens is not None:  # the implicit decodes each made a token
            produced = [s for s in self.running if s.joined >= 0]
        self._k += 1
        self._e += share
        self._c += cost
        done = self._completions()
        for s, n in scheduled:
            s.energy_j += share * n
            s.cost_usd += cost * n
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
                    del self.running[s]  # its KV stays here until the transfer ends
                    self._away.add(s)
                    s.handoff(s)
                    continue
            s.generated += 1
            if produced is not None:
                produced.append(s)
            if s.generated >= s.req.output_tokens:
                done.append(s)
            else:
                self._join(s)
        self._explicit = [s for s in self._explicit if s.prefilling and s in self.running]
        if produced:
            self.on_tokens(produced, now)
        if len(done) > 1:
            done.sort(key=lambda s: s.order)
        for s in done:
            self._finish(s)

    # ------------------------------------------------------------------ implicit decodes

    def _join(self, s: Seq) -> None:
        """A decoding sequence joins the implicit decodes at the current step."""
        s.joined, s.joined_e, s.joined_c = self._k, self._e, self._c
        off = s.computed - self._k
        self._n += 1
        self._off += off
        self._residue[off % self.kv.block_size] += 1
        heapq.heappush(self._heap, (self._k + s.req.output_tokens - s.generated, s.order, s))

    def generated(self, s: Seq) -> int:
        """Tokens a sequence has generated so far, implicit or not."""
        return s.generated + (self._k - s.joined if s.joined >= 0 else 0)

    def _materialize(self, s: Seq) -> None:
        """Bring an implicit sequence's counters to now and take it out of the aggregates."""
        d = self._k - s.joined
        s.computed += d
        s.generated += d
        s.energy_j += self._e - s.joined_e
        s.cost_usd += self._c - s.joined_c
        s.blocks = self.kv.blocks_for(s.computed) - s.pinned_blocks
        off = s.computed - self._k
        self._n -= 1
        self._off -= off
        self._residue[off % self.kv.block_size] -= 1
        s.joined = -1

    def _completions(self) -> list[Seq]:
        """The implicit decodes that have generated their last token, made explicit."""
        heap, done = self._heap, []
        while heap and heap[0][0] <= self._k:
            s = heapq.heappop(heap)[2]
            self._materialize(s)
            done.append(s)
        return done

    def _explicit_all(self) -> None:
        """Make every running sequence explicit (a step that may preempt)."""
        for s in self.running:
            if s.joined >= 0:
                self._materialize(s)
        self._heap.clear()
        self._explicit = list(self.running)

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
        del self.running[s]
        s.finished = self.env.now
        self._leave(s)
        self.on_finish(s, self)

    def release(self, s: Seq) -> None:
        """A handed-off sequence's KV has been transferred: free it here."""
        self._away.discard(s)
        self._leave(s)

    def _free_kv(self, s: Seq) -> None:
        """Give back a sequence's private blocks and its pins on cached ones."""
        self.kv.unpin(s.pinned)
        self.kv.release(s.blocks)
        s.blocks = s.pinned_blocks = 0
        s.pinned = ()

    def _leave(self, s: Seq) -> None:
        """A sequence is done here: its KV freed, its tokens no longer in flight."""
        self._free_kv(s)
        self._tokens -= s.req.input_tokens + s.req.output_tokens
        self._touch()
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
            cost_usd=prefilled.cost_usd,
            prefilled_on=prefilled.prefilled_on,
        )
        self._tokens += s.req.input_tokens + s.req.output_tokens
        self._incoming.add(s)
        self._touch()
        return s

    def receive(self, s: Seq) -> None:
        """Decode side: the KV has landed; the sequence waits for a decode slot."""
        self._incoming.discard(s)
        self.waiting.append(s)
        self._touch()
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
        self._free_kv(s)
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

    def check(self) -> None:
        """The implicit decodes agree with their sequences, and every private KV block
        belongs to one (for tests, at any point of a run)."""
        self.kv.check()
        implicit = [s for s in self.running if s.joined >= 0]
        bs, k = self.kv.block_size, self._k
        assert len(implicit) == self._n == len(self._heap)
        assert {id(e[2]) for e in self._heap} == {id(s) for s in implicit}
        offsets = [s.computed - s.joined for s in implicit]
        assert sum(offsets) == self._off
        assert self._residue == [sum(1 for o in offsets if o % bs == r) for r in range(bs)]
        assert [s for s in self.running if s.joined < 0] == self._explicit
        held = (*self._explicit, *self._away, *self._incoming, *self.waiting)
        private = sum(s.blocks for s in held)
        ahead = 1 if self._stepping else 0  # the step in flight has its blocks
        for s, off in zip(implicit, offsets, strict=True):
            assert s.generated - s.joined + k < s.req.output_tokens
            private += self.kv.blocks_for(off + k + ahead) - s.pinned_blocks
        assert private == self.kv.private, (private, self.kv.private)

    # ------------------------------------------------------------------ fast mode

    def _advance_stable(self):
        """Advance the implicit decodes over many steps; the first one is allocated."""
        env, kv, b, k = self.env, self.kv, self._n, self._k
        steps = self._heap[0][0] - k  # to the next completion
        # Blocks the batch crosses into over steps 1..j of the phase: a sequence does at
        # each step where its computed tokens are a multiple of the block size.
        after = np.arange(k + 1, k + steps + 1)
        crossed = np.cumsum(np.asarray(self._residue)[-after % kv.block_size])
        # Stop before the step whose blocks the free and evictable ones cannot cover.
        fits = int(np.searchsorted(crossed, kv.free + kv.evictable_blocks, side="right"))
        steps = min(steps, fits + 1)
        ctx = float(self._off + b * (k + 1)) + b * np.arange(steps, dtype=float)
        times, power = self.perf.step(Batch(decode_seqs=b, decode_ctx=ctx))
        energy = power * times
        ends = env.now + np.cumsum(times)
        self._phase = phase = _Phase(env.now, ends, energy, crossed)
        self.stats.events += 1
        self._sample(float(energy.sum() / times.sum()))
        self._wake = wake = env.event()
        self._wake_at(float(ends[-1]) - env.now, wake)
        yield wake
        done = steps if phase.done is None else phase.done  # see _nudge
        self._wake = None
        self._phase = None
        self._stepping = False
        self._touch()
        if done > 1:
            kv.allocate(int(crossed[done - 2]))
        spent = float(energy[:done].sum())
        self._account(float(times[:done].sum()), spent, done)
        self._k += done
        self._e += spent / b
        self._c += self.price_per_s * float(times[:done].sum()) / b
        self._run_length += done
        for s in self._completions():
            self._finish(s)
