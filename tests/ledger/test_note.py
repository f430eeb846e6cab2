"""C2SP signed notes and checkpoints: Go's published vector, and every malformation refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import CheckpointError, PublicKey, open_checkpoint, open_note, sign_note
from ledger.note import checkpoint_body, sign_checkpoint

GO = json.loads((Path(__file__).parents[1] / "fixtures/ledger/go_note_vector.json").read_text())


def _go_private_key() -> Ed25519PrivateKey:
    encoded = GO["private_key"].split("+", 4)[4]  # PRIVATE+KEY+name+keyid+base64
    blob = base64.b64decode(encoded)
    assert blob[0] == 0x01
    return Ed25519PrivateKey.from_private_bytes(blob[1:])


def test_signing_matches_go_sumdb_note_byte_for_byte() -> None:
    assert sign_note(GO["text"], GO["name"], _go_private_key()) == GO["signed"]


def test_verifier_key_matches_go() -> None:
    key = PublicKey.from_private(GO["name"], _go_private_key())
    assert key.vkey == GO["verifier_key"]
    assert PublicKey.from_vkey(GO["verifier_key"]) == key
    assert open_note(GO["signed"], key) == GO["text"]


def test_every_single_character_change_to_the_vkey_is_refused() -> None:
    vkey = GO["verifier_key"]
    for i in range(len(vkey)):
        mangled = vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1 :]
        with pytest.raises(CheckpointError):
            PublicKey.from_vkey(mangled)


@pytest.mark.parametrize(
    "note",
    [
        GO["text"],  # no signatures
        GO["text"] + "\n",  # blank line but no signature lines
        GO["signed"][:-1],  # signature line without its newline
        "\x01" + GO["signed"],  # control character in the text
        GO["signed"].replace("— PeterNeumann", "— Peter Neumann"),
        GO["signed"] + "Unexpected line.\n",
        GO["signed"].replace("x08go", "x08g!"),
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(CheckpointError):
        open_note(note, PublicKey.from_vkey(GO["verifier_key"]))


def test_signature_by_another_key_is_refused() -> None:
    other = PublicKey.from_private(GO["name"], Ed25519PrivateKey.generate())
    with pytest.raises(CheckpointError, match="no signature by key"):
        open_note(GO["signed"], other)


def test_a_flipped_signature_bit_is_refused() -> None:
    head, _, encoded = GO["signed"].rpartition(" ")
    blob = bytearray(base64.b64decode(encoded))
    blob[-1] ^= 1
    forged = f"{head} {base64.b64encode(bytes(blob)).decode()}\n"
    with pytest.raises(CheckpointError, match="invalid signature"):
        open_note(forged, PublicKey.from_vkey(GO["verifier_key"]))


def test_checkpoint_round_trip_and_origin_binding() -> None:
    key = Ed25519PrivateKey.generate()
    root = bytes(range(32))
    signed = sign_checkpoint("city.example/ledger", 42, root, "city.example/ledger", key)
    assert signed.note.startswith(checkpoint_body("city.example/ledger", 42, root) + "\n— ")
    public = PublicKey.from_private("city.example/ledger", key)
    opened = open_checkpoint(signed.note, public, origin="city.example/ledger")
    assert (opened.origin, opened.size, opened.root) == ("city.example/ledger", 42, root)
    with pytest.raises(CheckpointError, match="is for log"):
        open_checkpoint(signed.note, public, origin="other.example/ledger")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("origin\n", "expected origin, size and root"),
        ("origin\n01\n" + base64.b64encode(bytes(32)).decode() + "\n", "tree size"),
        ("origin\n-1\n" + base64.b64encode(bytes(32)).decode() + "\n", "tree size"),
        ("origin\n5\n" + base64.b64encode(bytes(31)).decode() + "\n", "root"),
        ("origin\n5\nnot-base64!\n", "root"),
    ],
)
def test_malformed_checkpoint_bodies_are_refused(body: str, problem: str) -> None:
    key = Ed25519PrivateKey.generate()
    note = sign_note(body, "origin", key)
    with pytest.raises(CheckpointError, match=problem):
        open_checkpoint(note, PublicKey.from_private("origin", key))


@pytest.mark.parametrize("name", ["", "has space", "plus+sign", "tab\tname"])
def test_unusable_key_names_are_refused(name: str) -> None:
    with pytest.raises(CheckpointError):
        sign_note("text\n", name, Ed25519PrivateKey.generate())


def test_cryptography_errors_are_mapped_for_every_call_we_make() -> None:
    """Each cryptography call on attacker-supplied bytes ends in our error or False."""
    with pytest.raises(CheckpointError, match="exactly 32 bytes"):
        PublicKey("name", b"\x01" * 31)
    key = PublicKey.from_vkey(GO["verifier_key"])
    for signature in (b"", b"\x00" * 3, b"\x00" * 64, b"\xff" * 200):
        assert key.verify(b"message", signature) is False
    note = GO["signed"].replace("x08go/ZJ", "x08go/Z")  # truncated signature blob
    with pytest.raises(CheckpointError):
        open_note(note, key)
