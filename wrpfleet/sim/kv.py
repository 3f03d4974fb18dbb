"""Paged KV cache with prefix caching, as vLLM's block manager keeps it.

Blocks are either free, private to a running sequence (being filled), or hold a
prompt block whose content id other requests can reuse: pinned while some
running sequence uses it, evictable (least recently used first) when none does.
The invariant ``total == free + private + pinned + evictable`` always holds.
"""

from __future__ import annotations

from collections import OrderedDict


class KVCache:
    __slots__ = (
        "block_size",
        "caching",
        "evictable",
        "evictable_blocks",
        "free",
        "pinned",
        "pinned_blocks",
        "private",
        "total",
    )

    def __init__(self, total_blocks: int, block_size: int, caching: bool = True) -> None:
        self.total = total_blocks
        self.block_size = block_size
        self.caching = caching
        self.free = total_blocks
        self.private = 0
        self.pinned: dict[int, list[int]] = {}  # content id -> [blocks, users]
        self.pinned_blocks = 0
        self.evictable: OrderedDict[int, int] = OrderedDict()  # content id -> blocks, LRU first
        self.evictable_blocks = 0

    @property
    def used(self) -> int:
        """Blocks held by running sequences (what vLLM reports as KV cache usage)."""
        return self.private + self.pinned_blocks

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def hits(self, ids: tuple[int, ...]) -> int:
        """How many leading content blocks of a prompt are cached."""
        if not self.caching:
            return 0
        n = 0
        for i in ids:
            if i not in self.pinned and i not in self.evictable:
                break
            n += 1
        return n

    def pin(self, ids: tuple[int, ...], blocks_each: int) -> None:
        """A sequence starts using cached content blocks."""
        for i in ids:
            entry = self.pinned.get(i)
            if entry is not None:
                entry[1] += 1
                continue
            blocks = self.evictable.pop(i)
            self.evictable_blocks -= blocks
            self.pinned[i] = [blocks, 1]
            self.pinned_blocks += blocks

    def unpin(self, ids: tuple[int, ...]) -> None:
        """A sequence stops using content blocks; unused ones become evictable. As in
        vLLM, the tail goes in first, so eviction eats a prefix from its end and the
        head stays usable."""
        for i in reversed(ids):
            entry = self.pinned[i]
            entry[1] -= 1
            if entry[1] == 0:
                del self.pinned[i]
                self.pinned_blocks -= entry[0]
                self.evictable[i] = entry[0]
                self.evictable_blocks += entry[0]

    def can_allocate(self, n: int) -> bool:
        return n <= self.free + self.evictable_blocks

    def allocate(self, n: int) -> bool:
        """Take ``n`` private blocks, evicting cached prefixes if needed; False if too few."""
        if n <= 0:
            return True
        if n > self.free + self.evictable_blocks:
            return False
        while self.free < n:
            _, blocks = self.evictable.popitem(last=False)
            self.evictable_blocks -= blocks
            self.free += blocks
        self.free -= n
        self.private += n
        return True

    def release(self, n: int) -> None:
        """Return ``n`` private blocks to the free pool."""
        self.private -= n
        self.free += n

    def publish(self, ids: tuple[int, ...], blocks_each: int) -> int:
        """Turn a sequence's private blocks holding these content blocks into shared,
        pinned ones (vLLM hashes full blocks so others can hit them). Returns how many
        private blocks the sequence gave up, duplicates of cached content included."""
        if not self.caching:
            return 0
        given = 0
        for i in ids:
            given += blocks_each
            self.private -= blocks_each
            if i in self.pinned or i in self.evictable:
                self.free += blocks_each  # computed twice: keep the cached copy
                self.pin((i,), blocks_each)
                continue
            self.pinned[i] = [blocks_each, 1]
            self.pinned_blocks += blocks_each
        return given

    def check(self) -> None:
        """The conservation of blocks (for tests)."""
        assert self.free >= 0 and self.private >= 0
        assert self.pinned_blocks == sum(b for b, _ in self.pinned.values())
        assert self.evictable_blocks == sum(self.evictable.values())
        assert self.free + self.private + self.pinned_blocks + self.evictable_blocks == self.total
