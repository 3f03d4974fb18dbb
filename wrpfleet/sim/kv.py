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
        "pinned_blocks",
        "private",
        "sizes",
        "total",
        "users",
    )

    def __init__(self, total_blocks: int, block_size: int, caching: bool = True) -> None:
        self.total = total_blocks
        self.block_size = block_size
        self.caching = caching
        self.free = total_blocks
        self.private = 0
        self.users: dict[int, int] = {}  # pinned content id -> running sequences using it
        self.sizes: dict[int, int] = {}  # pinned content id -> blocks
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
        users, evictable = self.users, self.evictable
        n = 0
        for i in ids:
            if i not in users and i not in evictable:
                break
            n += 1
        return n

    def pin(self, ids: tuple[int, ...], blocks_each: int) -> None:
        """A sequence starts using cached content blocks."""
        users = self.users
        for i in ids:
            u = users.get(i)
            if u is not None:
                users[i] = u + 1
                continue
            blocks = self.evictable.pop(i)
            self.evictable_blocks -= blocks
            users[i] = 1
            self.sizes[i] = blocks
            self.pinned_blocks += blocks

    def unpin(self, ids: tuple[int, ...]) -> None:
        """A sequence stops using content blocks; unused ones become evictable. As in
        vLLM, the tail goes in first, so eviction eats a prefix from its end and the
        head stays usable."""
        users = self.users
        unused = []
        for i in reversed(ids):
            u = users[i]
            if u == 1:
                unused.append(i)
            else:
                users[i] = u - 1
        if unused:
            for i in unused:
                del users[i]
            blocks = list(map(self.sizes.pop, unused))
            self.evictable.update(zip(unused, blocks, strict=True))
            n = sum(blocks)
            self.pinned_blocks -= n
            self.evictable_blocks += n

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
        if not self.caching or not ids:
            return 0
        given = blocks_each * len(ids)
        self.private -= given
        fresh = dict.fromkeys(ids, 1)
        if (
            len(fresh) == len(ids)
            and self.users.keys().isdisjoint(fresh)
            and self.evictable.keys().isdisjoint(fresh)
        ):  # the common case, in bulk: content nobody has cached
            self.users.update(fresh)
            self.sizes.update(dict.fromkeys(ids, blocks_each))
            self.pinned_blocks += given
            return given
        for i in ids:
            if i in self.users or i in self.evictable:
                self.free += blocks_each  # computed twice: keep the cached copy
                self.pin((i,), blocks_each)
                continue
            self.users[i] = 1
            self.sizes[i] = blocks_each
            self.pinned_blocks += blocks_each
        return given

    def check(self) -> None:
        """The conservation of blocks (for tests)."""
        assert self.free >= 0 and self.private >= 0
        assert self.users.keys() == self.sizes.keys()
        assert all(u > 0 for u in self.users.values())
        assert self.pinned_blocks == sum(self.sizes.values())
        assert self.evictable_blocks == sum(self.evictable.values())
        assert self.free + self.private + self.pinned_blocks + self.evictable_blocks == self.total
