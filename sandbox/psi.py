"""The enclave's private set intersection services over the identifier vault.

An operator brings its own list of identifiers and learns only what its scenario allows;
its list never exists in plaintext inside the enclave, and the enclave's identifiers never
leave it. Both directions work on one join domain's raw identifiers from the vault
(:meth:`deid.vault.IdentifierVault.members`), through :mod:`deid.psi`:

- **The operator asks** (:func:`enclave_server_setup`, then :func:`enclave_server_respond`):
  the operator is the PSI client. The enclave sends a setup over the domain and answers
  the operator's blinded request. The operator learns the size of the intersection or,
  when the scenario allows, which of its own items are in it; the enclave learns only
  how many items the operator sent.
- **The enclave asks** (:func:`enclave_client_request`, then :func:`enclave_client_match`):
  the enclave is the PSI client and the operator answers over its list with an exact
  (``raw``) setup. The enclave learns which of its records are on the list and turns them
  into pseudonyms for an aggregate job; the operator learns only how many identifiers
  the domain holds.

A session is one fresh key and one request, kept in memory only, and one ledger entry —
``psi.size_answered``, ``psi.matched`` or ``psi.refused`` — holding counts and message
hashes, never an item.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from deid.errors import PsiError
from deid.psi import DEFAULT_FPR, PsiClient, PsiServer, inspect_setup, unpack_reply
from sandbox.enclave import Enclave


@dataclass(frozen=True)
class PsiLimits:
    """How large a PSI session may be, and how many processes share its elliptic-curve work."""

    max_operator_items: int = 1_000_000
    max_enclave_items: int = 5_000_000
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)


@dataclass(frozen=True)
class ServerSession:
    """The enclave's half of one operator request: the setup to send, and the key to answer with."""

    session_id: str
    domain: str
    actor: str
    client_size: int
    fpr: float
    setup: bytes = field(repr=False)
    server: PsiServer = field(repr=False)


@dataclass
class ClientSession:
    """The enclave's request to an operator, and the key to read the operator's reply with."""

    session_id: str
    domain: str
    actor: str
    request: bytes = field(repr=False)
    client: PsiClient = field(repr=False)
    answered: bool = False


@dataclass(frozen=True)
class Match:
    """The enclave's records on an operator's list, as sorted pseudonyms for the aggregate job."""

    session_id: str
    domain: str
    pseudonyms: tuple[str, ...]
    enclave_items: int
    operator_items: int
    ledger_index: int


def enclave_server_setup(
    enclave: Enclave,
    domain: str,
    client_size: int,
    *,
    actor: str,
    fpr: float = DEFAULT_FPR,
    reveal_intersection: bool = False,
    limits: PsiLimits | None = None,
) -> ServerSession:
    """Open a session for an operator's request of ``client_size`` items against ``domain``.

    ``session.setup`` goes to the operator; ``reveal_intersection`` is the scenario's
    decision whether the operator may learn which of its items match, not only how many.
    """
    limits = limits or PsiLimits()
    session_id = _new_id()
    with _refusals(enclave, actor, session_id, {"direction": "operator_asks", "domain": domain}):
        if not 0 <= client_size <= limits.max_operator_items:
            raise PsiError(
                f"the operator's set may hold up to {limits.max_operator_items:,} items, not {client_size:,}"
            )
        server = PsiServer(
            _identifiers(enclave, domain, limits),
            reveal_intersection=reveal_intersection,
            structure="gcs",
            workers=limits.workers,
        )
        setup = server.setup(client_size, fpr=fpr)
    return ServerSession(session_id, domain, actor, client_size, fpr, setup, server)


def enclave_server_respond(enclave: Enclave, session: ServerSession, request: bytes) -> bytes:
    """Answer the session's one request, of ``client_size`` items; recorded as ``psi.size_answered``."""
    details: dict[str, Any] = {"direction": "operator_asks", "domain": session.domain}
    with _refusals(enclave, session.actor, session.session_id, details):
        response = session.server.respond(request)
    enclave.ledger.append(
        session.actor,
        "psi.size_answered",
        session.session_id,
        {
            **details,
            "operator_items": session.client_size,
            "enclave_items": session.server.size,
            "reveal_intersection": session.server.reveal_intersection,
            "structure": session.server.structure,
            "fpr": session.fpr,
            "setup_sha256": _sha(session.setup),
            "request_sha256": _sha(request),
            "response_sha256": _sha(response),
        },
    )
    return response


def enclave_client_request(
    enclave: Enclave, domain: str, *, actor: str, limits: PsiLimits | None = None
) -> ClientSession:
    """Blind ``domain``'s identifiers with a fresh key for the operator; ``session.request`` goes to it."""
    limits = limits or PsiLimits()
    session_id = _new_id()
    with _refusals(enclave, actor, session_id, {"direction": "enclave_asks", "domain": domain}):
        # Only an exact set is taken from the operator: a compressed one is decoded without bounds checks
        # and its false-positive rate is the operator's to choose.
        client = PsiClient.create(
            _identifiers(enclave, domain, limits),
            reveal_intersection=True,
            accept="raw",
            workers=limits.workers,
        )
        request = client.request()
    return ClientSession(session_id, domain, actor, request, client)


def enclave_client_match(
    enclave: Enclave, session: ClientSession, reply: bytes, *, limits: PsiLimits | None = None
) -> Match:
    """Read the operator's reply (:func:`deid.psi.pack_reply`): the domain's records on its list.

    Recorded as ``psi.matched``; the pseudonyms themselves stay with the caller.
    """
    limits = limits or PsiLimits()
    details: dict[str, Any] = {"direction": "enclave_asks", "domain": session.domain}
    with _refusals(enclave, session.actor, session.session_id, details):
        if session.answered:
            raise PsiError("this request has been answered already; another list needs a new request")
        session.answered = True
        setup, response = unpack_reply(reply)
        operator_items = inspect_setup(setup).size
        if operator_items is None:
            raise PsiError("the operator's setup is a compressed set; the enclave accepts only raw ones")
        if operator_items > limits.max_operator_items:
            raise PsiError(
                f"the operator's list may hold up to {limits.max_operator_items:,} items, "
                f"not {operator_items:,}"
            )
        found = session.client.intersection(setup, response)
    pseudonyms = tuple(sorted({enclave.pseudonymizer.pseudonym(raw, session.domain) for raw in found}))
    entry = enclave.ledger.append(
        session.actor,
        "psi.matched",
        session.session_id,
        {
            **details,
            "enclave_items": session.client.size,
            "operator_items": operator_items,
            "matched": len(pseudonyms),
            "request_sha256": _sha(session.request),
            "reply_sha256": _sha(reply),
            "matched_sha256": _sha("\n".join(pseudonyms).encode()),
        },
    )
    return Match(
        session.session_id, session.domain, pseudonyms, session.client.size, operator_items, entry.index
    )


def _identifiers(enclave: Enclave, domain: str, limits: PsiLimits) -> list[str]:
    """The raw identifiers of ``domain``, refused when there are none or too many."""
    count = enclave.vault.count(domain)
    if count == 0:
        raise PsiError(f"the vault holds no identifiers in join domain {domain!r}")
    if count > limits.max_enclave_items:
        raise PsiError(
            f"join domain {domain!r} holds {count:,} identifiers; PSI here is limited to "
            f"{limits.max_enclave_items:,}"
        )
    return [raw for _, raw in enclave.vault.members(domain)]


@contextmanager
def _refusals(enclave: Enclave, actor: str, session_id: str, details: dict[str, Any]) -> Iterator[None]:
    """Record a refused session in the ledger before the refusal reaches the caller."""
    try:
        yield
    except PsiError as exc:
        enclave.ledger.append(actor, "psi.refused", session_id, {**details, "reason": str(exc)})
        raise


def _new_id() -> str:
    return f"psi_{secrets.token_hex(8)}"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
