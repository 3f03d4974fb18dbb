"""Synthetic workloads: an arrival process and a weighted mix of request classes.

A class says what its requests look like: prompt and answer lengths, tags for
semantic routing (category, difficulty, language), an SLO class, a shared prefix
(system prompts, tool definitions: what a prefix cache can reuse) and, for chat
sessions and agents, several turns whose context grows turn by turn. Each later
turn ``follows`` the one before and reuses its blocks as a cached prefix.

The stream is lazy and deterministic for a seed: sessions in flight are the only
state held, so ten million requests cost no more memory than ten.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
from pydantic import (
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from wrpfleet.schema import ExistingPath, Spec
from wrpfleet.types import Request
from wrpfleet.workload.arrival import Arrival, ClosedLoop
from wrpfleet.workload.distribution import Dist, Sampler, Uniform, trace_lengths

CHUNK = 1024


class SharedPrefix(Spec):
    """A shared head of the prompt (system prompt, tool schema): ``variants`` distinct
    ones of ``tokens`` tokens, picked with Zipf popularity ``zipf_s`` (0 = uniform).
    Few variants make warm prefixes; many make cold ones."""

    tokens: PositiveInt
    variants: PositiveInt = 1
    zipf_s: NonNegativeFloat = 0.0


class Session(Spec):
    """Multi-turn sessions: each later turn adds ``new_input`` tokens (a user message,
    a tool result) to the whole context so far, ``think_s`` after the last answer."""

    turns: Dist
    think_s: Dist
    new_input: Dist


PRESETS: dict[str, dict[str, Any]] = {
    # Azure LLM trace 2023 (conversation): prompts ~1.1k tokens, answers ~210.
    "chat": {
        "category": "chat",
        "slo_class": "interactive",
        "input": {"dist": "lognormal", "mean": 650, "cv": 1.2, "max": 16_000},
        "output": {"dist": "lognormal", "mean": 230, "cv": 0.9, "max": 2_048},
        "prefix": {"tokens": 512, "variants": 8, "zipf_s": 1.0},
    },
    # Azure LLM trace 2023 (code): prompts ~2k tokens, answers ~30.
    "code": {
        "category": "code",
        "slo_class": "interactive",
        "input": {"dist": "lognormal", "mean": 1_000, "cv": 1.3, "max": 16_000},
        "output": {"dist": "lognormal", "mean": 30, "cv": 1.5, "max": 1_024},
        "prefix": {"tokens": 1_024, "variants": 4, "zipf_s": 1.0},
    },
    # Retrieval-augmented: long, mostly unique context, short answer.
    "rag": {
        "category": "rag",
        "slo_class": "standard",
        "input": {"dist": "lognormal", "mean": 4_000, "cv": 0.5, "max": 32_000},
        "output": {"dist": "lognormal", "mean": 200, "cv": 0.6, "max": 1_024},
        "prefix": {"tokens": 256, "variants": 2},
    },
    # Reasoning models: short question, long chain of thought.
    "reasoning": {
        "category": "reasoning",
        "slo_class": "standard",
        "difficulty": {"dist": "scipy", "name": "beta", "params": {"a": 4, "b": 2}},
        "input": {"dist": "lognormal", "mean": 400, "cv": 1.0, "max": 8_000},
        "output": {"dist": "lognormal", "mean": 4_000, "cv": 0.8, "max": 32_000},
    },
    # Agents: a large shared tool schema, many quick turns that append tool results.
    "agentic": {
        "category": "agent",
        "slo_class": "standard",
        "input": {"dist": "lognormal", "mean": 300, "cv": 1.0, "max": 4_000},
        "output": {"dist": "lognormal", "mean": 150, "cv": 1.0, "max": 2_048},
        "prefix": {"tokens": 3_000, "variants": 2},
        "session": {
            "turns": {"dist": "lognormal", "mean": 8, "cv": 0.6, "min": 1, "max": 50},
            "think_s": {"dist": "lognormal", "mean": 2.0, "cv": 1.0},
            "new_input": {"dist": "lognormal", "mean": 500, "cv": 1.5, "max": 8_000},
        },
    },
    # Human chat sessions: a few turns, tens of seconds of reading and typing between.
    "multiturn": {
        "category": "chat",
        "slo_class": "interactive",
        "input": {"dist": "lognormal", "mean": 400, "cv": 1.2, "max": 8_000},
        "output": {"dist": "lognormal", "mean": 250, "cv": 0.9, "max": 2_048},
        "prefix": {"tokens": 512, "variants": 8, "zipf_s": 1.0},
        "session": {
            "turns": {"dist": "lognormal", "mean": 4, "cv": 0.8, "min": 1, "max": 30},
            "think_s": {"dist": "lognormal", "mean": 30.0, "cv": 1.0},
            "new_input": {"dist": "lognormal", "mean": 120, "cv": 1.2, "max": 4_000},
        },
    },
}


class RequestClass(Spec):
    """One kind of request in the mix. ``preset`` fills in defaults; keys given here win.

    ``input`` is the prompt after the shared prefix, so a request's prompt is
    ``prefix.tokens + input`` (plus the conversation so far, in a session).
    ``lengths_from`` resamples (input, output) pairs jointly from a trace instead.
    """

    preset: Literal["chat", "code", "rag", "reasoning", "agentic", "multiturn"] | None = None
    name: str = ""
    weight: PositiveFloat = 1.0
    category: str = "chat"
    slo_class: str = "standard"
    input: Dist = 512
    output: Dist = 128
    lengths_from: ExistingPath | None = None
    difficulty: Dist = Field(default_factory=lambda: {"dist": "uniform", "low": 0, "high": 1})
    language: dict[str, PositiveFloat] = Field(default_factory=lambda: {"en": 1.0})
    modality: str = "text"
    prefix: SharedPrefix | None = None
    session: Session | None = None

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") in PRESETS:
            data = {**PRESETS[data["preset"]], "name": data["preset"], **data}
        return data

    @model_validator(mode="after")
    def _named(self) -> RequestClass:
        if not self.name:
            object.__setattr__(self, "name", self.category)
        if not self.language:
            raise ValueError("language needs at least one entry")
        return self


class SyntheticWorkload(Spec):
    """Requests from an arrival process and a mix of classes, until a horizon or a count."""

    kind: Literal["synthetic"] = "synthetic"
    name: str = "synthetic"
    description: str = ""
    arrival: Arrival
    classes: list[RequestClass] = Field(
        default_factory=lambda: [RequestClass(preset="chat")], min_length=1
    )
    duration_s: PositiveFloat | None = 600.0
    num_requests: PositiveInt | None = None
    block_tokens: PositiveInt = Field(16, description="tokens per prefix block (vLLM: 16)")
    seed: int = 0

    @model_validator(mode="after")
    def _bounded(self) -> SyntheticWorkload:
        if self.duration_s is None and self.num_requests is None:
            raise ValueError("give duration_s or num_requests, or the stream never ends")
        if (
            isinstance(self.arrival, ClosedLoop)
            and self.num_requests is None
            and self.arrival.think_s.mean == 0
            and all(c.session is None or c.session.think_s.mean == 0 for c in self.classes)
        ):
            raise ValueError(
                "a closed loop with zero think time has every request at t = 0: "
                "set num_requests, or a think time"
            )
        return self

    def requests(self, seed: int | None = None) -> Iterator[Request]:
        """The request stream; the same seed gives the same stream."""
        gen = _Generator(self, self.seed if seed is None else seed)
        stream = gen.closed_loop() if isinstance(self.arrival, ClosedLoop) else gen.open_loop()
        return itertools.islice(stream, self.num_requests)


class _Choice:
    """Draws indices with given weights, a chunk at a time."""

    def __init__(self, weights: list[float], rng: np.random.Generator) -> None:
        p = np.asarray(weights, dtype=float)
        self._p, self._rng = p / p.sum(), rng
        self._buf: list[int] = []

    def __call__(self) -> int:
        if len(self._p) == 1:
            return 0
        if not self._buf:
            self._buf = self._rng.choice(len(self._p), CHUNK, p=self._p).tolist()[::-1]
        return self._buf.pop()


class _Class:
    """A class's samplers, each on its own random stream."""

    def __init__(self, spec: RequestClass, rng: np.random.Generator, variants: list[list[int]]):
        self.spec = spec
        rngs = rng.spawn(8)
        self.input = Sampler(spec.input, rngs[0]).tokens
        self.output = Sampler(spec.output, rngs[1]).tokens
        if spec.lengths_from is not None:
            self.pairs = trace_lengths(spec.lengths_from)
            self.row = Sampler(Uniform(dist="uniform", low=0, high=len(self.pairs[0])), rngs[0])
        self.difficulty = Sampler(spec.difficulty, rngs[2])
        self.languages = list(spec.language)
        self.language = _Choice(list(spec.language.values()), rngs[3])
        self.variants = variants
        if spec.prefix is not None:
            ranks = np.arange(1, spec.prefix.variants + 1, dtype=float)
            self.variant = _Choice((ranks**-spec.prefix.zipf_s).tolist(), rngs[4])
        if spec.session is not None:
            self.turns = Sampler(spec.session.turns, rngs[5]).tokens
            self.think = Sampler(spec.session.think_s, rngs[6])
            self.new_input = Sampler(spec.session.new_input, rngs[7]).tokens

    def first(self) -> tuple[int, int]:
        """(new prompt tokens, output tokens) of a first turn."""
        if self.spec.lengths_from is not None:
            i = int(self.row())
            return int(self.pairs[0][i]), int(self.pairs[1][i])
        return self.input(), self.output()

    def later(self) -> tuple[int, int]:
        """(new prompt tokens, output tokens) of a later turn of a session."""
        return self.new_input(), self.output()


class _Conversation:
    """A session's (or a lone request's) context: its tokens and their block ids."""

    __slots__ = ("blocks", "cls", "language", "last_id", "session_id", "tokens", "turn", "turns")

    def __init__(
        self, cls: _Class, session_id: int | None, turns: int, shared: list[int], tokens: int
    ) -> None:
        self.cls, self.session_id, self.turns = cls, session_id, turns
        self.blocks, self.tokens = list(shared), tokens
        self.turn, self.last_id = 0, None
        self.language = cls.languages[cls.language()]


class _Generator:
    def __init__(self, spec: SyntheticWorkload, seed: int) -> None:
        self.spec = spec
        root = np.random.default_rng(seed)
        arrival_rng, choice_rng, think_rng, *class_rngs = root.spawn(3 + len(spec.classes))
        self.arrival_rng = self.start_rng = arrival_rng
        self.choose_class = _Choice([c.weight for c in spec.classes], choice_rng)
        self.next_block = 0
        self.classes = [
            _Class(c, rng, self._shared_variants(c))
            for c, rng in zip(spec.classes, class_rngs, strict=True)
        ]
        if isinstance(spec.arrival, ClosedLoop):
            self.loop_think = Sampler(spec.arrival.think_s, think_rng)
        self.next_id = 0
        self.next_session = 0
        self.horizon = spec.duration_s if spec.duration_s is not None else float("inf")

    def _shared_variants(self, spec: RequestClass) -> list[list[int]]:
        if spec.prefix is None:
            return []
        n = spec.prefix.tokens // self.spec.block_tokens
        out = []
        for _ in range(spec.prefix.variants):
            out.append(list(range(self.next_block, self.next_block + n)))
            self.next_block += n
        return out

    def _start(self, user: int | None = None) -> _Conversation:
        cls = self.classes[self.choose_class()]
        shared, tokens = [], 0
        if cls.spec.prefix is not None:
            shared, tokens = cls.variants[cls.variant()], cls.spec.prefix.tokens
        if cls.spec.session is None:
            return _Conversation(cls, user, 1, shared, tokens)
        self.next_session += 1
        return _Conversation(cls, self.next_session - 1, cls.turns(), shared, tokens)

    def _grow(self, conv: _Conversation, tokens: int) -> None:
        conv.tokens += tokens
        full = conv.tokens // self.spec.block_tokens
        if full > len(conv.blocks):
            conv.blocks.extend(range(self.next_block, self.next_block + full - len(conv.blocks)))
            self.next_block = conv.blocks[-1] + 1

    def _turn(self, conv: _Conversation, t: float, follows: int | None, think: float) -> Request:
        cls = conv.cls
        new, out = cls.first() if conv.turn == 0 else cls.later()
        self._grow(conv, new)
        answer: tuple[int, ...] = ()
        if conv.turn + 1 < conv.turns:  # a later turn will send this answer back
            bt = self.spec.block_tokens
            n = (conv.tokens + out) // bt - len(conv.blocks)
            answer = tuple(range(self.next_block, self.next_block + n))
        req = Request(
            id=self.next_id,
            arrival_s=t,
            input_tokens=conv.tokens,
            output_tokens=out,
            prefix_blocks=tuple(conv.blocks),
            block_tokens=self.spec.block_tokens,
            output_blocks=answer,
            session_id=conv.session_id,
            turn=conv.turn,
            follows=follows,
            think_s=think,
            category=cls.spec.category,
            difficulty=float(cls.difficulty()),
            language=conv.language,
            modality=cls.spec.modality,
            slo_class=cls.spec.slo_class,
        )
        self.next_id += 1
        self._grow(conv, out)  # the answer is context for the next turn (its ids: answer)
        conv.turn += 1
        conv.last_id = req.id
        return req

    def open_loop(self) -> Iterator[Request]:
        pending: list[tuple[float, int, float, _Conversation]] = []  # later turns
        seq = itertools.count()
        for t in self.spec.arrival.times(self.arrival_rng):
            if t >= self.horizon:
                break
            while pending and pending[0][0] <= t:
                yield self._next_turn(pending, seq)
            conv = self._start()
            yield self._turn(conv, t, None, 0.0)
            self._schedule(conv, t, pending, seq)
        while pending and pending[0][0] < self.horizon:
            yield self._next_turn(pending, seq)

    def _schedule(self, conv: _Conversation, t: float, pending: list, seq) -> None:
        if conv.turn < conv.turns:
            think = max(0.0, conv.cls.think())
            heapq.heappush(pending, (t + think, next(seq), think, conv))

    def _next_turn(self, pending: list, seq) -> Request:
        t, _, think, conv = heapq.heappop(pending)
        req = self._turn(conv, t, conv.last_id, think)
        self._schedule(conv, t, pending, seq)
        return req

    def closed_loop(self) -> Iterator[Request]:
        users = self.spec.arrival.users
        order = itertools.count()  # equal times go in turn, so no user starves the others
        # (nominal time, turn order, user, think before this request, conversation in
        #  progress or None, the user's last request id). Users start spread over their
        #  first think time, not all at once.
        heap: list[tuple[float, int, int, float, _Conversation | None, int | None]] = [
            (max(0.0, self.loop_think()) * self.start_rng.random(), next(order), u, 0.0, None, None)
            for u in range(users)
        ]
        heapq.heapify(heap)
        self.next_session = users  # a user's chain of single requests is session `user`
        while heap[0][0] < self.horizon:
            t, _, user, think, conv, last = heap[0]
            if conv is None or conv.turn >= conv.turns:
                conv = self._start(user)
            req = self._turn(conv, t, last, think)
            if conv.turn < conv.turns:
                gap = max(0.0, conv.cls.think())
            else:
                gap = max(0.0, self.loop_think())
            heapq.heapreplace(heap, (t + gap, next(order), user, gap, conv, req.id))
            yield req
