"""PSI core: exact sizes, the false-positive rate, what each side can decode, sharding, messages."""

from __future__ import annotations

import math
import threading

import pytest
from private_set_intersection.python import Request, Response, ServerSetup

from deid import psi
from deid.errors import PsiError
from deid.psi import (
    ClientState,
    PsiClient,
    PsiServer,
    Structure,
    inspect_request,
    inspect_setup,
    pack_reply,
    unpack_reply,
)

IDS = [f"ID{i:06d}" for i in range(400)]


def _run(
    client_items: list[str],
    server_items: list[str],
    *,
    reveal: bool = False,
    structure: Structure = "gcs",
    fpr: float = psi.DEFAULT_FPR,
) -> tuple[PsiClient, bytes, bytes]:
    """One whole exchange; returns the client and the server's setup and response."""
    client = PsiClient.create(client_items, reveal_intersection=reveal)
    server = PsiServer(server_items, reveal_intersection=reveal, structure=structure)
    setup = server.setup(client.size, fpr=fpr)
    return client, setup, server.respond(client.request())


def _points(message: bytes) -> list[bytes]:
    return list(Request.FromString(message).encrypted_elements)


@pytest.mark.parametrize("structure", ["gcs", "raw"])
@pytest.mark.parametrize("reveal", [False, True])
@pytest.mark.parametrize("overlap", [0.0, 0.5, 1.0])
def test_sizes_are_exact(overlap: float, reveal: bool, structure: Structure) -> None:
    shared = int(200 * overlap)
    client_items, server_items = IDS[:200], IDS[200 - shared : 400 - shared]
    client, setup, response = _run(client_items, server_items, reveal=reveal, structure=structure)
    assert client.intersection_size(setup, response) == shared
    if reveal:
        assert client.intersection(setup, response) == sorted(set(client_items) & set(server_items))


@pytest.mark.parametrize("structure", ["gcs", "raw"])
@pytest.mark.parametrize(("client_items", "server_items"), [([], IDS[:5]), (IDS[:5], []), ([], [])])
def test_empty_sets_meet_in_nothing(
    client_items: list[str], server_items: list[str], structure: Structure
) -> None:
    client, setup, response = _run(client_items, server_items, reveal=True, structure=structure)
    assert client.intersection_size(setup, response) == 0
    assert client.intersection(setup, response) == []


def test_duplicates_and_formatting_count_once() -> None:
    uscc, mobile = "91350100M000100Y43", "13812345678"
    client_items = [uscc, uscc.lower(), " 9135 0100-m000100y43 ", "+86 138 1234 5678", "", "   ", "X1"]
    server_items = [uscc, uscc, mobile, "8613812345678", "X2"]
    client, setup, response = _run(client_items, server_items, reveal=True)
    assert client.size == 3
    assert client.intersection_size(setup, response) == 2
    assert client.intersection(setup, response) == [mobile, uscc]
    assert PsiServer(server_items, reveal_intersection=True).size == 3


def test_false_positive_rate_is_per_item_as_configured() -> None:
    n, fpr = 4000, 0.01
    client, setup, response = _run([f"C{i}" for i in range(n)], [f"S{i}" for i in range(n)], fpr=fpr)
    false_positives = client.intersection_size(setup, response)
    tolerance = 5 * math.sqrt(n * fpr * (1 - fpr))
    assert abs(false_positives - n * fpr) <= tolerance, false_positives


@pytest.mark.parametrize("fpr", [0.0, 1.0, -0.5, math.nan, 1e-18])
def test_impossible_rates_are_refused(fpr: float) -> None:
    with pytest.raises(PsiError, match="false-positive rate"):
        PsiServer(IDS[:10], reveal_intersection=False).setup(10, fpr=fpr)


def test_extreme_sizes_still_make_a_sound_filter() -> None:
    # The library's Golomb coding breaks once the mean gap nears 2^53, so the range is capped.
    assert inspect_setup(PsiServer(["A1"], reveal_intersection=False).setup(10**9)).structure == "gcs"
    client, setup, response = _run(["a1", "b", "c", "d", "e"], ["A1"], reveal=True, fpr=psi.MIN_FPR)
    assert client.intersection(setup, response) == ["A1"]
    with pytest.raises(PsiError, match="too small for a set of 5,000 items"):
        PsiServer([f"S{i}" for i in range(5000)], reveal_intersection=False).setup(5000, fpr=psi.MIN_FPR)


def test_the_client_learns_the_size_only_when_that_is_all_it_may() -> None:
    server_items = IDS[:300]
    client_items = IDS[200:300] + [f"C{i}" for i in range(100)]
    client, setup, response = _run(client_items, server_items, structure="raw")
    for item in server_items:
        assert item.encode() not in setup + response
    answered = list(Response.FromString(response).encrypted_elements)
    assert answered == sorted(answered), "the order of a size-only response is not the request's"
    assert client.intersection_size(setup, response) == 100
    with pytest.raises(PsiError, match="size of the intersection only"):
        client.intersection(setup, response)
    # The setup is under the server's key: blinding the server-only items with the
    # client's own key reproduces none of its points, so they cannot be recognized.
    server_only = server_items[:200]
    own = PsiClient(ClientState(client.state.key, False, tuple(server_only))).request()
    assert set(_points(own)).isdisjoint(ServerSetup.FromString(setup).raw.encrypted_elements)


def test_the_client_learns_only_its_own_matching_items() -> None:
    server_items = IDS[:300]
    client_items = IDS[250:350]
    client, setup, response = _run(client_items, server_items, reveal=True, structure="raw")
    assert client.intersection(setup, response) == IDS[250:300]
    assert set(client.intersection(setup, response)) <= set(client_items)


def test_the_server_sees_only_blinded_points_and_their_number() -> None:
    items = [f"91350100M0001{i:05d}" for i in range(50)]
    client = PsiClient.create(items, reveal_intersection=False)
    request = client.request()
    assert inspect_request(request) == psi.RequestInfo(50, False)
    for item in items:
        assert item.encode() not in request
    assert all(len(p) == psi.ELEMENT_BYTES for p in _points(request))


def test_every_request_has_fresh_keys() -> None:
    first = PsiClient.create(IDS[:20], reveal_intersection=False)
    second = PsiClient.create(IDS[:20], reveal_intersection=False)
    assert first.state.key != second.state.key
    assert set(_points(first.request())).isdisjoint(_points(second.request()))
    setups = [PsiServer(IDS[:20], reveal_intersection=False, structure="raw").setup(20) for _ in range(2)]
    assert setups[0] != setups[1]


def test_a_server_sends_one_setup_and_answers_one_request() -> None:
    client = PsiClient.create(IDS[:5], reveal_intersection=False)
    server = PsiServer(IDS[:5], reveal_intersection=False)
    with pytest.raises(PsiError, match="setup must be made"):
        server.respond(client.request())
    server.setup(5)
    with pytest.raises(PsiError, match="sent its setup already"):
        server.setup(5)
    server.respond(client.request())
    with pytest.raises(PsiError, match="fresh key"):
        server.respond(client.request())


def test_sharded_requests_are_the_same_bytes() -> None:
    assert threading.active_count() == 1, "the sharded runs must really fork"
    client = PsiClient.create([f"C{i:05d}" for i in range(2 * psi.MIN_SHARD)], reveal_intersection=True)
    assert PsiClient(client.state, workers=2).request() == client.request()


@pytest.mark.parametrize(("reveal", "structure"), [(True, "raw"), (False, "gcs")])
def test_sharded_answers_equal_unsharded(reveal: bool, structure: Structure) -> None:
    """Every sharded step (and the raw setup) against its single-process run, on the fewest items
    each side needs for every step to be split between two workers."""
    size = 2 * psi.MIN_SHARD
    client_items = [f"C{i:05d}" for i in range(size)]
    shared = client_items[::3]
    server_items = shared + [f"S{i:05d}" for i in range(size - len(shared))]
    client = PsiClient.create(client_items, reveal_intersection=reveal, workers=2)
    request = client.request()
    answers = []
    for workers in (1, 2):
        server = PsiServer(server_items, reveal_intersection=reveal, structure=structure, workers=workers)
        setup = server.setup(client.size)
        response = server.respond(request)
        if not reveal:
            answered = list(Response.FromString(response).encrypted_elements)
            assert answered == sorted(answered), "sorted as a whole, not shard by shard"
        reader = PsiClient(client.state, workers=workers)
        answers.append(
            reader.intersection(setup, response) if reveal else reader.intersection_size(setup, response)
        )
    expected = sorted(shared) if reveal else len(shared)
    assert answers == [expected, expected]


@pytest.fixture
def answered() -> tuple[PsiClient, bytes, bytes]:
    return _run(IDS[:10], IDS[5:15], reveal=True, structure="raw")


def _refused_request(request: bytes, match: str, *, size: int = 3) -> None:
    server = PsiServer(IDS[:5], reveal_intersection=False)
    server.setup(size)
    with pytest.raises(PsiError, match=match):
        server.respond(request)


def test_malformed_requests_are_refused() -> None:
    good = PsiClient.create(IDS[:3], reveal_intersection=False).request()
    _refused_request(b"\xff\xff\xff", "not a serialized PSI request")
    _refused_request(good + b"\x78\x01", "no PSI peer sends")
    _refused_request(Request(encrypted_elements=[b"\x02" * 32] * 3).SerializeToString(), "33-byte")
    _refused_request(
        Request(encrypted_elements=[b"\x02" + b"\xff" * 32] * 3).SerializeToString(), "cannot be"
    )
    _refused_request(PsiClient.create(IDS[:3], reveal_intersection=True).request(), "not set up to give")
    _refused_request(good, "setup was made for 4", size=4)


def test_oversized_messages_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    request = PsiClient.create(IDS[:50], reveal_intersection=False).request()
    monkeypatch.setattr(psi, "MAX_MESSAGE_BYTES", len(request) - 1)
    with pytest.raises(PsiError, match="over the"):
        inspect_request(request)
    with pytest.raises(PsiError, match="over the"):
        unpack_reply(pack_reply(request, b""))


def test_malformed_answers_are_refused(answered: tuple[PsiClient, bytes, bytes]) -> None:
    client, setup, response = answered
    points = list(Response.FromString(response).encrypted_elements)
    fewer = Response(encrypted_elements=points[:-1]).SerializeToString()
    repeated = Response(encrypted_elements=[points[0]] * len(points)).SerializeToString()
    raw = list(ServerSetup.FromString(setup).raw.encrypted_elements)
    unsorted = ServerSetup(raw=ServerSetup.RawInfo(encrypted_elements=raw[::-1])).SerializeToString()
    wild = ServerSetup(gcs=ServerSetup.GCSInfo(div=90, hash_range=10, bits=b"\x01")).SerializeToString()
    bloom = ServerSetup(bloom_filter=ServerSetup.BloomFilterInfo(num_hash_functions=1)).SerializeToString()
    for bad_setup, bad_response, match in [
        (setup, fewer, "the request held 10"),
        (setup, repeated, "repeats items"),
        (unsorted, response, "not sorted"),
        (wild, response, "impossible divisor"),
        (bloom, response, "only gcs and raw"),
        (b"", response, "no set"),
    ]:
        with pytest.raises(PsiError, match=match):
            client.intersection(bad_setup, bad_response)
    gcs = PsiServer(IDS[:5], reveal_intersection=True).setup(client.size)
    with pytest.raises(PsiError, match="accepts only raw"):
        PsiClient(client.state, accept="raw").intersection(gcs, response)
    assert client.intersection(setup, response) == IDS[5:10]


def test_replies_and_state_round_trip_and_refuse_garbage(answered: tuple[PsiClient, bytes, bytes]) -> None:
    client, setup, response = answered
    assert unpack_reply(pack_reply(setup, response)) == (setup, response)
    assert inspect_setup(setup) == psi.SetupInfo("raw", 10)
    with pytest.raises(PsiError, match="not a serialized PSI reply"):
        unpack_reply(b"\x0a\x05ab")
    restored = ClientState.from_json(client.state.to_json())
    assert restored == client.state
    assert client.state.key.hex() not in repr(client.state)
    for text in ["{", '{"key": "00", "reveal_intersection": true, "items": []}', '{"items": 3}']:
        with pytest.raises(PsiError, match="PSI state"):
            ClientState.from_json(text)
