"""RFC 6962 hashing vectors, and proofs that survive every mutation an attacker might try."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parents[1] / "fixtures/ledger/rfc6962_vectors.json").read_text())
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves_hex"]]
OTHER = b"\x5a" * 32


@pytest.mark.parametrize("size", range(9))
def test_root_vectors(size: int) -> None:
    assert root(LEAVES[:size]).hex() == VECTORS["roots_hex"][size]


def test_leaf_hash_vectors() -> None:
    assert [leaf_hash(x).hex() for x in LEAVES] == VECTORS["leaf_hashes_hex"]


def test_empty_tree_is_sha256_of_nothing() -> None:
    assert root([]) == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    # A leaf whose data is two hashes must not hash like the node over them (second preimage).
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(left + right) != merkle.node_hash(left, right)


def _leaves(n: int) -> list[bytes]:
    return [f"entry-{i}".encode() for i in range(n)]


def _flip(data: bytes, bit: int = 3) -> bytes:
    return bytes([data[0] ^ (1 << bit)]) + data[1:]


def _inclusion_mutations(
    index: int, size: int, proof: list[bytes], good_root: bytes
) -> list[tuple[Any, ...]]:
    """(description, leaf, index, size, proof, root) claims that must all be refused."""
    leaf = _leaves(size)[index]
    out: list[tuple[Any, ...]] = [
        ("index - 1", leaf, index - 1, size, proof, good_root),
        ("index + 1", leaf, index + 1, size, proof, good_root),
        ("index ^ 2", leaf, index ^ 2, size, proof, good_root),
        ("size * 2", leaf, index, size * 2, proof, good_root),
        ("size // 2", leaf, index, size // 2, proof, good_root),
        ("wrong leaf", b"not-this-entry", index, size, proof, good_root),
        ("empty root", leaf, index, size, proof, EMPTY_ROOT),
        ("other root", leaf, index, size, proof, OTHER),
        ("root bit flipped", leaf, index, size, proof, _flip(good_root)),
        ("trailing garbage", leaf, index, size, [*proof, b""], good_root),
        ("trailing root", leaf, index, size, [*proof, good_root], good_root),
        ("preceding garbage", leaf, index, size, [b"", *proof], good_root),
        ("preceding root", leaf, index, size, [good_root, *proof], good_root),
        ("short hash", leaf, index, size, [p[:31] for p in proof], good_root),
        ("not a list", leaf, index, size, tuple(proof), good_root),
        ("negative size", leaf, index, -size, proof, good_root),
        ("bool index", leaf, True, size, proof, good_root),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = _flip(bad[i])
        out.append((f"proof[{i}] bit flipped", leaf, index, size, bad, good_root))
    if proof:
        out.append(("removed last", leaf, index, size, proof[:-1], good_root))
        out.append(("removed first", leaf, index, size, proof[1:], good_root))
    if len(proof) > 1:
        out.append(("inserted", leaf, index, size, [proof[0], OTHER, *proof[1:]], good_root))
        out.append(("swapped", leaf, index, size, [proof[1], proof[0], *proof[2:]], good_root))
    return out


@pytest.mark.parametrize("size", range(1, 34))
def test_inclusion_proofs_verify_and_every_mutation_is_refused(size: int) -> None:
    leaves = _leaves(size)
    good_root = root(leaves)
    for index in range(size):
        proof = inclusion_proof(leaves, index)
        original = [leaves[index], index, size, proof, good_root]
        assert verify_inclusion(*original)
        for name, *claim in _inclusion_mutations(index, size, proof, good_root):
            if claim == original:  # the mutation changed nothing (e.g. on an empty proof)
                continue
            assert not verify_inclusion(*claim), f"size {size} index {index}: {name} accepted"


def _consistency_mutations(
    old: int, new: int, proof: list[bytes], old_root: bytes, new_root: bytes
) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [
        ("old - 1", old - 1, new, old_root, new_root, proof),
        ("old + 1", old + 1, new, old_root, new_root, proof),
        ("new * 2", old, new * 2, old_root, new_root, proof),
        ("new // 2", old, new // 2, old_root, new_root, proof),
        ("swapped roots", old, new, new_root, old_root, proof),
        ("swapped sizes", new, old, new_root, old_root, proof),
        ("old root flipped", old, new, _flip(old_root), new_root, proof),
        ("new root flipped", old, new, old_root, _flip(new_root), proof),
        ("empty new root", old, new, old_root, EMPTY_ROOT, proof),
        ("extended", old, new, old_root, new_root, [*proof, OTHER]),
        ("extended front", old, new, old_root, new_root, [OTHER, *proof]),
        ("garbage element", old, new, old_root, new_root, [*proof, b"x"]),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = _flip(bad[i], 0)
        out.append((f"proof[{i}] bit flipped", old, new, old_root, new_root, bad))
    if proof:
        out.append(("truncated", old, new, old_root, new_root, proof[:-1]))
        out.append(("without first", old, new, old_root, new_root, proof[1:]))
    return out


@pytest.mark.parametrize("new", range(1, 34))
def test_consistency_proofs_verify_and_every_mutation_is_refused(new: int) -> None:
    leaves = _leaves(new)
    roots = [root(leaves[:n]) for n in range(new + 1)]
    for old in range(1, new):
        proof = consistency_proof(leaves, old)
        assert verify_consistency(old, new, roots[old], roots[new], proof)
        for name, *claim in _consistency_mutations(old, new, proof, roots[old], roots[new]):
            if claim == [old, new, roots[old], roots[new], proof]:  # the mutation changed nothing
                continue
            assert not verify_consistency(*claim), f"{old}->{new}: {name} accepted"


def test_consistency_edge_cases() -> None:
    leaves = _leaves(5)
    full = root(leaves)
    assert consistency_proof(leaves, 5) == []
    assert consistency_proof(leaves, 0) == []
    assert verify_consistency(5, 5, full, full, [])
    assert not verify_consistency(5, 5, full, full, [full])
    assert not verify_consistency(5, 5, full, EMPTY_ROOT, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, full, [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, full, [full])
    assert not verify_consistency(0, 5, full, full, [])
    assert not verify_consistency(3, 5, root(leaves[:3]), full, [])
    assert not verify_consistency(6, 5, full, full, [])


@pytest.mark.parametrize(
    "args",
    [
        ("leaf", 0, 1, None, EMPTY_ROOT),
        (b"leaf", 0, 1, [], "root"),
        (b"leaf", 0, 1, [None], EMPTY_ROOT),
        (b"leaf", "0", 1, [], EMPTY_ROOT),
        (b"leaf", 0, 1.0, [], EMPTY_ROOT),
        (b"leaf", 1, 1, [], EMPTY_ROOT),
        (b"leaf", 0, 0, [], EMPTY_ROOT),
    ],
)
def test_verifiers_return_false_on_malformed_input(args: tuple[Any, ...]) -> None:
    assert verify_inclusion(*args) is False


@pytest.mark.parametrize(
    "args",
    [
        (1, 2, EMPTY_ROOT, EMPTY_ROOT, None),
        (1, 2, b"short", EMPTY_ROOT, [EMPTY_ROOT]),
        ("1", 2, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (-1, 2, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (1, 2, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT, 7]),
    ],
)
def test_consistency_verifier_returns_false_on_malformed_input(args: tuple[Any, ...]) -> None:
    assert verify_consistency(*args) is False


def test_proof_builders_refuse_impossible_positions() -> None:
    with pytest.raises(ValueError, match="outside a tree"):
        inclusion_proof(_leaves(3), 3)
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(_leaves(3), 4)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), size=st.integers(min_value=1, max_value=300))
def test_random_trees_every_proof_verifies(data: st.DataObject, size: int) -> None:
    leaves = [bytes([i % 251]) * (i % 7) for i in range(size)]
    full = root(leaves)
    index = data.draw(st.integers(0, size - 1), label="index")
    assert verify_inclusion(leaves[index], index, size, inclusion_proof(leaves, index), full)
    old = data.draw(st.integers(0, size), label="old")
    assert verify_consistency(old, size, root(leaves[:old]), full, consistency_proof(leaves, old))
