"""Private set intersection (PSI) over elliptic-curve Diffie-Hellman, with openmined-psi.

The cryptographic core, no policy. The *client* learns how many of its items the *server*
also holds — or, if the server agrees, which of its own items they are — and of the rest
of the server's set only roughly its size; the server learns only how many items the
client has. Only serialized protobuf messages cross:

1. ``Request``, client → server: each client item hashed onto P-256 and blinded with the
   client's key, H(x)^c;
2. ``ServerSetup``, server → client: the server's items under its key, H(y)^s, in a
   Golomb-compressed set (``gcs``: about 4 bytes an item at the default rate, false
   positives at the chosen rate) or sorted as they are (``raw``: 35 bytes an item, exact,
   and the only form to accept from a server one does not trust);
3. ``Response``, server → client: the request blinded again, H(x)^cs, in request order if
   the client may learn its matching items, else sorted so it can count them but not say which;
4. the client removes its blinding, H(x)^s, and looks each item up in the setup.

Keys are fresh for every request: a :class:`PsiServer` makes one setup and answers one
request. Both sides normalize items (:func:`deid.identifiers.normalize_identifier`) and
drop duplicates, so the size counts distinct identifiers.

**Sharding.** The EC work — blinding the request, blinding it again, unblinding the answer,
building a ``raw`` setup — is split into contiguous shards that worker processes run under
the request's one key, and the outputs are joined in order into *one* message. Blinding is
deterministic for a given key, so each party sends byte for byte what the unsharded run
would. A size-only response is sorted after the join, as a whole: sorted shard by shard it
would give the client every shard's count, more than the size. A ``gcs`` setup is one
library call and stays in one process.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import accumulate, chain, pairwise
from multiprocessing import get_context
from typing import Any, Literal, TypeVar

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from private_set_intersection.python import DataStructure, Request, Response, ServerSetup
from private_set_intersection.python import client as _LibClient
from private_set_intersection.python import server as _LibServer

from deid.errors import PsiError
from deid.identifiers import normalize_identifier

Structure = Literal["gcs", "raw"]
DEFAULT_FPR = 1e-9
"""Default chance that one client item outside the server's set is counted as inside it."""
ELEMENT_BYTES = 33
"""One blinded item on the wire: a compressed P-256 point."""
MAX_MESSAGE_BYTES = 1 << 27
"""No larger message is parsed: 128 MiB, about 3.8 million blinded items."""
MIN_SHARD = 4096
"""Fewer items than this are not worth a worker process."""
MIN_FPR = 1e-15
"""The smallest false-positive rate a ``gcs`` setup is built for."""

# The library keeps a GCS hash range in an int64 and silently builds garbage past it.
_MAX_HASH_RANGE = 1 << 62
# Its Golomb parameter is -log2(-log2(1 - items / range)): infinite once the mean gap nears 2^53.
_MAX_GAP = 1 << 50
_MAX_GCS_DIV = 62
_KEY_BYTES = 32  # a P-256 scalar
T = TypeVar("T")


def normalize_items(items: Iterable[str]) -> list[str]:
    """``items`` normalized as datasets' identifiers are, blanks dropped, each once, first seen first."""
    return list(dict.fromkeys(filter(None, map(normalize_identifier, items))))


@dataclass(frozen=True)
class RequestInfo:
    """What a server can see of a request before answering it."""

    size: int
    reveal_intersection: bool


@dataclass(frozen=True)
class SetupInfo:
    """What a client can see of a setup: its form and, for ``raw``, exactly how many items it holds."""

    structure: Structure
    size: int | None


def inspect_request(data: bytes) -> RequestInfo:
    """Parse and check a serialized request; raises :class:`PsiError` if it is malformed or too large."""
    message = _parse(Request, data, "request")
    _check_points(message.encrypted_elements, "request")
    return RequestInfo(len(message.encrypted_elements), bool(message.reveal_intersection))


def inspect_setup(data: bytes) -> SetupInfo:
    """Parse and check a serialized setup; raises :class:`PsiError` if it is malformed or too large."""
    message = _parse(ServerSetup, data, "setup")
    kind = message.WhichOneof("data_structure")
    if kind == "raw":
        points = message.raw.encrypted_elements
        _check_points(points, "setup")
        # The library's lookup walks both lists in order; an unsorted set would silently miss matches.
        if not all(a < b for a, b in pairwise(points)):
            raise PsiError("the setup's items are not sorted and distinct")
        return SetupInfo("raw", len(points))
    if kind == "gcs":
        if not 0 <= message.gcs.div <= _MAX_GCS_DIV or not 0 < message.gcs.hash_range <= _MAX_HASH_RANGE:
            raise PsiError("the setup's compressed set has an impossible divisor or hash range")
        return SetupInfo("gcs", None)
    raise PsiError(f"the setup holds {kind or 'no set'}; only gcs and raw sets are accepted")


@dataclass(frozen=True)
class ClientState:
    """All a client keeps between its request and the server's answer. Secret: it holds the key."""

    key: bytes = field(repr=False)
    reveal_intersection: bool
    items: tuple[str, ...]
    """The normalized, distinct items in request order."""

    def to_json(self) -> str:
        """The state as JSON text, for a file only its owner can read."""
        return json.dumps(
            {"key": self.key.hex(), "reveal_intersection": self.reveal_intersection, "items": self.items},
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> ClientState:
        """Read state written by :meth:`to_json`; raises :class:`PsiError` on anything else."""
        try:
            data = json.loads(text)
            key, reveal, items = bytes.fromhex(data["key"]), data["reveal_intersection"], data["items"]
        except (ValueError, KeyError, TypeError):
            raise PsiError("the PSI state is not JSON with a key, reveal_intersection and items") from None
        if len(key) != _KEY_BYTES or not isinstance(reveal, bool) or not isinstance(items, list):
            raise PsiError("the PSI state has a malformed key, reveal_intersection or items")
        if not all(isinstance(item, str) for item in items):
            raise PsiError("the PSI state's items must all be strings")
        return cls(key, reveal, tuple(items))


class PsiClient:
    """The client's half of one request: its key, its items, the request and reading the answer.

    ``accept`` names the only setup structure taken from the server; leave it ``None``
    only for a server you trust, because the library decodes a ``gcs`` setup without
    bounds checks. ``workers`` is how many processes may share the EC work.
    """

    def __init__(self, state: ClientState, *, accept: Structure | None = None, workers: int = 1) -> None:
        self.state = state
        self._accept, self._workers = accept, workers

    @classmethod
    def create(
        cls,
        items: Iterable[str],
        *,
        reveal_intersection: bool,
        accept: Structure | None = None,
        workers: int = 1,
    ) -> PsiClient:
        """A client with a fresh key for ``items``, normalized, de-duplicated and put in random order."""
        chosen = normalize_items(items)
        # Input order could carry meaning (sorted identifiers group by region); the request's must not.
        secrets.SystemRandom().shuffle(chosen)
        key = bytes(_LibClient.CreateWithNewKey(reveal_intersection).GetPrivateKeyBytes())
        return cls(ClientState(key, reveal_intersection, tuple(chosen)), accept=accept, workers=workers)

    @property
    def size(self) -> int:
        """How many distinct items the request holds."""
        return len(self.state.items)

    def request(self) -> bytes:
        """The serialized request: every item blinded with this client's key."""
        jobs = [
            (self.state.key, self.state.reveal_intersection, chunk)
            for chunk in _split(self.state.items, self._workers)
        ]
        blinded = _map(_blind, jobs, self._workers, "request")
        message = Request(
            reveal_intersection=self.state.reveal_intersection,
            encrypted_elements=list(chain.from_iterable(blinded)),
        )
        return bytes(message.SerializeToString())

    def intersection_size(self, setup: bytes, response: bytes) -> int:
        """How many of this client's items the server holds (false positives at the setup's rate)."""
        if self.state.reveal_intersection:
            return len(self._matches(setup, response))
        jobs = [(self.state.key, setup, c) for c in self._answer(setup, response)]
        return sum(_map(_count, jobs, self._workers, "response"))

    def intersection(self, setup: bytes, response: bytes) -> list[str]:
        """This client's own items that the server holds, sorted; only for a request that asked for them."""
        if not self.state.reveal_intersection:
            raise PsiError("this request asked for the size of the intersection only, not its items")
        return sorted(self.state.items[i] for i in self._matches(setup, response))

    def _matches(self, setup: bytes, response: bytes) -> list[int]:
        chunks = self._answer(setup, response)
        offsets = accumulate((len(c) for c in chunks), initial=0)
        jobs = [(self.state.key, setup, c, start) for c, start in zip(chunks, offsets, strict=False)]
        return list(chain.from_iterable(_map(_found, jobs, self._workers, "response")))

    def _answer(self, setup: bytes, response: bytes) -> list[list[bytes]]:
        """Check the server's two messages; the response's elements split into shards."""
        info = inspect_setup(setup)
        if self._accept is not None and info.structure != self._accept:
            raise PsiError(f"the setup is a {info.structure} set; this client accepts only {self._accept}")
        elements = list(_parse(Response, response, "response").encrypted_elements)
        _check_points(elements, "response")
        if len(elements) != self.size:
            raise PsiError(f"the response holds {len(elements):,} items; the request held {self.size:,}")
        # An honest server maps distinct items to distinct points; repeats would match unrelated items.
        if len(set(elements)) != len(elements):
            raise PsiError("the response repeats items: the server did not follow the protocol")
        return [list(c) for c in _split(elements, self._workers)]


class PsiServer:
    """The server's half of one request: a fresh key over its items, one setup, one response.

    ``structure`` is the setup's form (see the module notes); ``workers`` as for the client.
    """

    def __init__(
        self,
        items: Iterable[str],
        *,
        reveal_intersection: bool,
        structure: Structure = "gcs",
        workers: int = 1,
    ) -> None:
        self.reveal_intersection, self.structure = reveal_intersection, structure
        self._items = normalize_items(items)
        self._key = bytes(_LibServer.CreateWithNewKey(reveal_intersection).GetPrivateKeyBytes())
        self._workers = workers
        self._client_size: int | None = None
        self._answered = False

    @property
    def size(self) -> int:
        """How many distinct items the server holds."""
        return len(self._items)

    def setup(self, client_size: int, *, fpr: float = DEFAULT_FPR) -> bytes:
        """The serialized setup for a request of ``client_size`` items.

        ``fpr`` is the chance that one client item outside this set is counted in (``gcs``
        only; ``raw`` is exact): at most ``fpr``, about ``fpr`` × server size / the larger
        of the two sizes. A request of any other size is refused.
        """
        if self._client_size is not None:
            raise PsiError("this server has sent its setup already; the next request needs a new server")
        if client_size < 0:
            raise PsiError(f"the client size must be zero or more, got {client_size}")
        if not MIN_FPR <= fpr < 1:
            raise PsiError(f"the false-positive rate must be from {MIN_FPR:g} up to 1, got {fpr}")
        if self.structure == "gcs":
            largest, declared = max(client_size, self.size, 1), max(client_size, 1)
            # A capped gap keeps a small set codable beside a large request; the rate, about
            # server items / range, then stays under 2^-50, below any rate accepted.
            hash_range = min(largest / fpr, max(self.size, 1) * _MAX_GAP)
            if hash_range > _MAX_HASH_RANGE:
                raise PsiError(
                    f"a false-positive rate of {fpr:g} is too small for a set of {largest:,} items"
                )
            # The library's range is largest / (its rate / declared): its rate is per request, ours per item.
            message = _LibServer.CreateFromKey(self._key, self.reveal_intersection).CreateSetupMessage(
                largest * declared / hash_range, declared, self._items, DataStructure.GCS
            )
        else:
            jobs = [(self._key, self.reveal_intersection, c) for c in _split(self._items, self._workers)]
            points = sorted(chain.from_iterable(_map(_raw_set, jobs, self._workers, "setup")))
            message = ServerSetup(raw=ServerSetup.RawInfo(encrypted_elements=points))
        self._client_size = client_size
        return bytes(message.SerializeToString())

    def respond(self, request: bytes) -> bytes:
        """Blind the request's items with this server's key; the only request this key answers."""
        if self._client_size is None:
            raise PsiError("the setup must be made before a request is answered")
        if self._answered:
            raise PsiError("this server's key has met a request already; every request gets a fresh key")
        self._answered = True
        message = _parse(Request, request, "request")
        if bool(message.reveal_intersection) != self.reveal_intersection:
            wanted = "the matching items" if message.reveal_intersection else "the size only"
            raise PsiError(f"the request asks for {wanted}, which this server was not set up to give")
        elements = list(message.encrypted_elements)
        _check_points(elements, "request")
        if len(elements) != self._client_size:
            raise PsiError(
                f"the request holds {len(elements):,} items but the setup was made for "
                f"{self._client_size:,}; its false-positive rate holds only for that size"
            )
        jobs = [(self._key, self.reveal_intersection, c) for c in _split(elements, self._workers)]
        blinded = list(chain.from_iterable(_map(_reblind, jobs, self._workers, "request")))
        if not self.reveal_intersection:
            blinded.sort()
        return bytes(Response(encrypted_elements=blinded).SerializeToString())


def answer_request(
    items: Iterable[str], request: bytes, max_request: int, workers: int = 1
) -> tuple[bytes, int, int]:
    """Answer another party's request over ``items`` with an exact (``raw``) setup, as the
    server: the packed reply (:func:`pack_reply`), the request's size, and how many distinct
    items answered it. Refuses (PsiError) a request for more than ``max_request`` items."""
    info = inspect_request(request)
    if info.size > max_request:
        raise PsiError(f"the request holds {info.size:,} items, over the limit of {max_request:,}")
    server = PsiServer(items, reveal_intersection=info.reveal_intersection, structure="raw", workers=workers)
    setup = server.setup(info.size)
    return pack_reply(setup, server.respond(request)), info.size, server.size


def pack_reply(setup: bytes, response: bytes) -> bytes:
    """A server's setup and response as one message, ``Reply { bytes setup = 1; bytes response = 2; }``."""
    return bytes(_Reply(setup=setup, response=response).SerializeToString())


def unpack_reply(data: bytes) -> tuple[bytes, bytes]:
    """The (setup, response) of a :func:`pack_reply` message, each still to be checked by the client."""
    message = _parse(_Reply, data, "reply")
    return bytes(message.setup), bytes(message.response)


def _reply_class() -> Any:
    proto = descriptor_pb2.FileDescriptorProto(name="psi_reply.proto", package="veilbox.psi", syntax="proto3")
    reply, kind = proto.message_type.add(name="Reply"), descriptor_pb2.FieldDescriptorProto
    for number, name in enumerate(("setup", "response"), start=1):
        reply.field.add(name=name, number=number, type=kind.TYPE_BYTES, label=kind.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(proto.SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("veilbox.psi.Reply"))


_Reply = _reply_class()


def _parse(kind: Any, data: bytes, what: str) -> Any:
    if len(data) > MAX_MESSAGE_BYTES:
        raise PsiError(f"the {what} is {len(data):,} bytes, over the {MAX_MESSAGE_BYTES:,}-byte limit")
    try:
        message = kind.FromString(data)
    except DecodeError:
        raise PsiError(f"the {what} is not a serialized PSI {what}") from None
    message.DiscardUnknownFields()
    # Peers serialize canonically; unknown fields, repeats or padded numbers mean it came from elsewhere.
    if message.ByteSize() != len(data):
        raise PsiError(f"the {what} carries fields or encodings no PSI peer sends")
    return message


def _check_points(elements: Sequence[bytes], what: str) -> None:
    if any(len(e) != ELEMENT_BYTES for e in elements):
        raise PsiError(f"the {what} holds an item that is not a {ELEMENT_BYTES}-byte compressed P-256 point")


def _split(items: Sequence[T], workers: int) -> list[Sequence[T]]:
    """Contiguous shards, at most one per worker and none under MIN_SHARD items unless alone."""
    count = max(1, min(workers, len(items) // MIN_SHARD))
    step = max(1, -(-len(items) // count))
    return [items[i : i + step] for i in range(0, len(items), step)] or [items]


def _map(fn: Callable[..., T], jobs: list[tuple[Any, ...]], workers: int, what: str) -> list[T]:
    """``fn`` over ``jobs``, in worker processes when there are several and forking is safe."""
    try:
        # fork, not spawn: spawn re-runs the caller's main module. Forking a process that has
        # other threads can deadlock the child, so such callers do the work themselves.
        if workers > 1 and len(jobs) > 1 and threading.active_count() == 1:
            with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=get_context("fork")) as pool:
                return list(pool.map(fn, *zip(*jobs, strict=True)))
        return [fn(*job) for job in jobs]
    except RuntimeError as exc:
        raise PsiError(f"the {what} cannot be processed: {str(exc).splitlines()[0]}") from None


def _blind(key: bytes, reveal: bool, items: Sequence[str]) -> list[bytes]:
    return list(_LibClient.CreateFromKey(key, reveal).CreateRequest(list(items)).encrypted_elements)


def _reblind(key: bytes, reveal: bool, elements: list[bytes]) -> list[bytes]:
    request = Request(reveal_intersection=reveal, encrypted_elements=elements)
    return list(_LibServer.CreateFromKey(key, reveal).ProcessRequest(request).encrypted_elements)


def _raw_set(key: bytes, reveal: bool, items: Sequence[str]) -> list[bytes]:
    # The rate and client size do not shape a raw set; the library only wants valid ones.
    setup = _LibServer.CreateFromKey(key, reveal).CreateSetupMessage(0.5, 1, list(items), DataStructure.RAW)
    return list(setup.raw.encrypted_elements)


def _found(key: bytes, setup: bytes, elements: list[bytes], start: int) -> list[int]:
    answer = ServerSetup.FromString(setup), Response(encrypted_elements=elements)
    return [start + int(i) for i in _LibClient.CreateFromKey(key, True).GetIntersection(*answer)]


def _count(key: bytes, setup: bytes, elements: list[bytes]) -> int:
    answer = ServerSetup.FromString(setup), Response(encrypted_elements=elements)
    return int(_LibClient.CreateFromKey(key, False).GetIntersectionSize(*answer))
