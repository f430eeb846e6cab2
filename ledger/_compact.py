"""The right edge of a growing Merkle tree, and where each complete subtree's hash is stored.

Node hashes of complete subtrees are kept in one file in post-order: appending leaf ``i``
adds the leaf's hash and then the hashes of every subtree it completes. A subtree at
``level`` (2**level leaves) with horizontal ``index`` therefore sits at a position that
arithmetic alone finds, so a proof reads O(log² n) hashes and never a leaf.
"""

from __future__ import annotations

from ledger.merkle import EMPTY_ROOT, node_hash


def nodes_count(size: int) -> int:
    """How many complete-subtree hashes a tree of ``size`` leaves has: 2n − popcount(n)."""
    return 2 * size - size.bit_count()


def node_position(level: int, index: int) -> int:
    """Post-order position of the complete subtree covering leaves [index·2^level, (index+1)·2^level)."""
    last = ((index + 1) << level) - 1
    return nodes_count(last) + level


def frontier_positions(size: int) -> list[tuple[int, int]]:
    """(level, index) of the complete subtrees that make up a tree of ``size`` leaves, left to right."""
    out = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, start >> level))
            start += 1 << level
    return out


class CompactRange:
    """Hashes of the complete subtrees on the right edge of a tree: enough to extend it."""

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: list[bytes] | None = None) -> None:
        self.size = size
        self.hashes = list(hashes or [])
        if len(self.hashes) != size.bit_count():
            raise ValueError(f"a tree of size {size} has {size.bit_count()} edge subtrees")

    def append(self, leaf: bytes) -> list[bytes]:
        """Add a leaf hash; returns the new node hashes in storage (post-) order."""
        created = [leaf]
        node, size = leaf, self.size
        while size & 1:
            node = node_hash(self.hashes.pop(), node)
            created.append(node)
            size >>= 1
        self.hashes.append(node)
        self.size += 1
        return created

    def root(self) -> bytes:
        """MTH of the whole tree."""
        if not self.hashes:
            return EMPTY_ROOT
        result = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            result = node_hash(left, result)
        return result

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self.hashes)
