"""Merkle tree hashing and proofs exactly as RFC 6962 §2.1 / RFC 9162 §2.1 define them.

Pure functions: an auditor's own tools can call them on leaves they hold, and the
ledger store uses the same proof construction over the node hashes it keeps on disk.

Leaves are the raw leaf data (a ledger entry's stored bytes); hashing is SHA-256 with
the 0x00 / 0x01 domain-separation prefixes, and the empty tree's root is SHA-256("").

>>> leaves = [b"a", b"b", b"c"]
>>> proof = inclusion_proof(leaves, 2)
>>> verify_inclusion(b"c", 2, 3, proof, root(leaves))
True
>>> verify_inclusion(b"c", 1, 3, proof, root(leaves))
False
>>> verify_consistency(2, 3, root(leaves[:2]), root(leaves), consistency_proof(leaves, 2))
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

SubtreeHash = Callable[[int, int], bytes]
"""Returns MTH(D[lo:hi]) for a non-empty leaf range; how it is found is up to the caller."""


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n ≥ 2): RFC 6962's k."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over raw leaf data."""
    if not leaves:
        return EMPTY_ROOT
    return _leaf_source(leaves)(0, len(leaves))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) (RFC 6962 §2.1.1) over raw leaf data."""
    return inclusion_path(index, len(leaves), _leaf_source(leaves))


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]) (RFC 6962 §2.1.2) over raw leaf data.

    The proof between equal sizes, or from the empty tree, is empty (RFC 9162 §2.1.4).
    """
    return consistency_path(old_size, len(leaves), _leaf_source(leaves))


def inclusion_path(index: int, size: int, subtree: SubtreeHash) -> list[bytes]:
    """PATH(index, D[size]) with subtree hashes supplied by ``subtree``."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            path.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree(lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_path(old_size: int, new_size: int, subtree: SubtreeHash) -> list[bytes]:
    """PROOF(old_size, D[new_size]) with subtree hashes supplied by ``subtree``."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    path: list[bytes] = []
    # SUBPROOF(m, D[lo:hi], b), unrolled: the walk descends one side each step.
    m, lo, hi, whole = old_size, 0, new_size, True
    while m != hi - lo:
        k = split_point(hi - lo)
        if m <= k:
            path.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree(lo, lo + k))
            lo += k
            m -= k
            whole = False
    if not whole:
        path.append(subtree(lo, hi))
    path.reverse()
    return path


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """Whether ``proof`` shows raw leaf data ``leaf`` at ``index`` in the tree ``root`` of ``size``.

    RFC 9162 §2.1.3.2. Returns False, never raises, on any malformed input.
    """
    if not isinstance(leaf, bytes | bytearray):
        return False
    return verify_inclusion_hash(leaf_hash(bytes(leaf)), index, size, proof, root)


def verify_inclusion_hash(hash_: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """As :func:`verify_inclusion`, for a caller that holds only the leaf hash."""
    if not (_is_hash(hash_) and _is_hash(root) and _is_proof(proof)):
        return False
    if not (_is_count(index) and _is_count(size)) or index >= size:
        return False
    fn, sn, r = index, size - 1, hash_
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> bool:
    """Whether ``proof`` shows the tree (``new_size``, ``new_root``) extends (``old_size``, ``old_root``).

    RFC 9162 §2.1.4.2. Returns False, never raises, on any malformed input.
    """
    if not (_is_hash(old_root) and _is_hash(new_root) and _is_proof(proof)):
        return False
    if not (_is_count(old_size) and _is_count(new_size)) or old_size > new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


def _leaf_source(leaves: Sequence[bytes]) -> SubtreeHash:
    hashes = [leaf_hash(x) for x in leaves]

    def subtree(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return hashes[lo]
        k = split_point(hi - lo)
        return node_hash(subtree(lo, lo + k), subtree(lo + k, hi))

    return subtree


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_proof(proof: object) -> bool:
    return isinstance(proof, list) and all(_is_hash(p) for p in proof)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
