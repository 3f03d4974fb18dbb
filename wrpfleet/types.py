"""Shared vocabulary of the WRP stack (DESIGN.md, "Core types").

These are plain, immutable records: workloads produce `Request`s, engines and
policies exchange views and decisions built from them. Nothing here imports
simpy, ray or vllm.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Request:
    """One inference request as a workload issues it.

    ``arrival_s`` is the nominal arrival time. A request that ``follows`` another
    (the next turn of a session, or a closed-loop user's next request) is released
    ``think_s`` after that request completes; its nominal arrival assumes zero
    service time, so the real release is never earlier than ``arrival_s``.

    ``prefix_blocks`` are content hashes of the prompt's blocks of
    ``block_tokens`` tokens, in order: equal ids mean equal prefix content, which
    is what a prefix cache can reuse.
    """

    id: int
    arrival_s: float
    input_tokens: int
    output_tokens: int
    prefix_blocks: tuple[int, ...] = ()
    block_tokens: int = 16
    session_id: int | None = None
    turn: int = 0
    follows: int | None = None
    think_s: float = 0.0
    category: str = "unknown"
    difficulty: float = 0.5
    language: str = "en"
    modality: str = "text"
    slo_class: str = "standard"
