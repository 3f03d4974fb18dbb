"""Prompts as text and back: how a workload's requests go over HTTP.

A workload knows token counts and prefix block ids, not text. `prompt_for` writes
a request as words, one word a token: each prefix block as ``block_tokens`` copies
of a word naming the block, then words unique to the request; so requests that
share prefix blocks share their opening text. The twin engine reads prompts back
with `request_from_text`: a token is a whitespace-separated word and the prefix
blocks are a chain of hashes over 16-word chunks, so shared openings become shared
block ids, as vLLM's block hashes do. (A real tokenizer splits such words into one
or a few tokens: against vLLM the counts are close, not equal.)
"""

from __future__ import annotations

import hashlib

from wrpfleet.types import Request

BLOCK_WORDS = 16


def prompt_for(req: Request) -> str:
    words: list[str] = []
    for block in req.prefix_blocks:
        if len(words) + req.block_tokens > req.input_tokens:
            break
        words.extend([f"b{block & 0xFFFFFFFFFFFF:x}"] * req.block_tokens)
    words.extend(f"r{req.id}" for _ in range(req.input_tokens - len(words)))
    return " ".join(words)


def request_from_text(
    rid: int, text: str, max_tokens: int, arrival_s: float = 0.0, **tags: object
) -> Request:
    words = text.split()
    blocks: list[int] = []
    h = b""
    for i in range(len(words) // BLOCK_WORDS):
        chunk = " ".join(words[i * BLOCK_WORDS : (i + 1) * BLOCK_WORDS]).encode()
        h = hashlib.blake2b(h + chunk, digest_size=8).digest()
        blocks.append(int.from_bytes(h, "big") >> 1)
    return Request(
        id=rid,
        arrival_s=arrival_s,
        input_tokens=max(1, len(words)),
        output_tokens=max(1, max_tokens),
        prefix_blocks=tuple(blocks),
        block_tokens=BLOCK_WORDS,
        text=text,
        **tags,  # type: ignore[arg-type]
    )
