"""Offline verification of a whole ledger directory, as an auditor runs it.

The verifier reads only the entries file, the ledger description, the latest checkpoint
and (unless the auditor pins a key) the directory's public key. It never trusts the
derived index or node files. For every entry it checks the canonical encoding, the index
sequence, the ``prev`` hash chain and that time never goes backwards; it rebuilds the
Merkle tree, checks the latest checkpoint's signature and root, and, given a checkpoint
the auditor saved earlier, proves the log still extends it (no truncation, rollback or
fork).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

from ledger import merkle
from ledger._compact import CompactRange
from ledger._layout import CHECKPOINT_FILE, LOG_FILE, META_FILE, PUBLIC_KEY_FILE
from ledger.entry import GENESIS_PREV, MAX_ENTRY_BYTES, Entry
from ledger.errors import CheckpointError, LedgerCorruptError
from ledger.note import Checkpoint, PublicKey, open_checkpoint

_CHUNK = 1 << 22


@dataclass(frozen=True)
class Failure:
    """The first thing that broke: the entry index where known, and what was wrong."""

    index: int | None
    problem: str

    def __str__(self) -> str:
        where = f"entry {self.index}" if self.index is not None else "ledger"
        return f"{where}: {self.problem}"


@dataclass(frozen=True)
class VerifyReport:
    """What an offline verification established."""

    origin: str
    size: int
    root: bytes
    key: str
    key_pinned: bool
    checkpoint_size: int | None = None
    extends_size: int | None = None
    failure: Failure | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.failure is None

    def summary(self) -> str:
        """One line: what holds, or the first thing that broke."""
        if self.failure is not None:
            return f"FAILED {self.failure}"
        parts = [f"ok: {self.origin}: {self.size} entries chained, root {self.root.hex()}"]
        if self.checkpoint_size is None:
            parts.append("no signed checkpoint yet")
        else:
            pinned = "pinned key" if self.key_pinned else "key from the ledger directory"
            parts.append(f"checkpoint at size {self.checkpoint_size} verified ({pinned} {self.key})")
        if self.extends_size is not None:
            parts.append(f"extends the saved checkpoint at size {self.extends_size}")
        return "; ".join(parts + list(self.notes))


def verify_log(
    path: str | os.PathLike[str],
    *,
    public_key: PublicKey | None = None,
    trusted_checkpoint: str | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Verify the ledger directory at ``path`` from its entries up.

    ``public_key`` pins the checkpoint key (otherwise the directory's own public key is
    used, which proves integrity but not who signed). ``trusted_checkpoint`` is a signed
    checkpoint saved earlier; the log must extend it. Large logs are checked in parallel
    by ``workers`` processes (default: one per core). ``progress`` is called with the bytes
    of entries checked so far and the total, after each run of about 4 MiB. Never raises
    for a bad ledger: the report's ``failure`` says what broke.
    """
    root = Path(path)
    try:
        origin = json.loads((root / META_FILE).read_text(encoding="utf-8"))["origin"]
        key = public_key or PublicKey.from_vkey((root / PUBLIC_KEY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError, CheckpointError) as exc:
        return _failed(str(root), Failure(None, f"not a readable ledger directory ({exc})"))
    base = VerifyReport(origin, 0, merkle.EMPTY_ROOT, key.vkey, public_key is not None)

    try:
        latest = _read_checkpoint(root / CHECKPOINT_FILE, key, origin)
        saved = open_checkpoint(trusted_checkpoint, key, origin=origin) if trusted_checkpoint else None
    except CheckpointError as exc:
        return replace(base, failure=Failure(None, f"checkpoint: {exc}"))
    if saved is not None and latest is not None and saved.size > latest.size:
        return replace(base, failure=Failure(
            None, f"the latest checkpoint (size {latest.size}) is older than the saved one "
            f"(size {saved.size}): the checkpoint was rolled back",
        ))  # fmt: skip

    wanted = {c.size for c in (latest, saved) if c is not None}
    scan = _scan(root / LOG_FILE, wanted, workers if workers is not None else os.cpu_count() or 1, progress)
    report = replace(base, size=scan.size, root=scan.root, notes=scan.notes)
    if scan.failure is not None:
        return replace(report, failure=scan.failure)
    for label, checkpoint in (("signed checkpoint", latest), ("saved checkpoint", saved)):
        if checkpoint is None:
            continue
        failure = _check_against(checkpoint, scan, label)
        if failure is not None:
            return replace(report, failure=failure)
    return replace(
        report,
        checkpoint_size=latest.size if latest else None,
        extends_size=saved.size if saved else None,
    )


@dataclass
class _Scan:
    size: int = 0
    root: bytes = merkle.EMPTY_ROOT
    roots: dict[int, bytes] = field(default_factory=dict)
    failure: Failure | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Link:
    """What an entry must continue: the entry before it (or the start of the log)."""

    index: int = 0
    prev: str = GENESIS_PREV
    time: str = ""

    def check(self, entry: Entry) -> Failure | None:
        """The first way ``entry`` fails to follow on, or None."""
        if entry.index != self.index:
            return Failure(
                self.index, f"carries index {entry.index}: entries were removed, added or reordered"
            )
        if entry.prev != self.prev:
            if self.index == 0:
                return Failure(0, "prev is not the genesis value: the start of the log was replaced")
            return Failure(
                self.index - 1,
                f"does not hash to the prev that entry {self.index} recorded: one of the two "
                "was altered after being written",
            )
        if entry.time < self.time:
            return Failure(self.index, f"time {entry.time} is earlier than the entry before it")
        return None


@dataclass(frozen=True)
class _Chunk:
    """What one worker established about a run of whole lines of the entries file."""

    leaves: bytes
    first: Entry | None = None
    last: _Link | None = None
    failure: Failure | None = None  # with the index relative to the chunk's first line
    torn: bool = False


def _check_chunk(path: str, start: int, stop: int) -> _Chunk:
    """Check the lines in bytes [start, stop) on their own: format, and chain within the run."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(stop - start)
    lines = data.split(b"\n")
    tail = lines.pop()
    leaves: list[bytes] = []
    first: Entry | None = None
    link: _Link | None = None
    for k, line in enumerate(lines):
        try:
            entry = Entry.parse(line)
        except LedgerCorruptError as exc:
            return _Chunk(b"".join(leaves), first, link, Failure(k, str(exc)))
        if link is None:
            first = entry
        else:
            failure = link.check(entry)
            if failure is not None:
                relative = Failure((failure.index or 0) - first.index if first else 0, failure.problem)
                return _Chunk(b"".join(leaves), first, link, relative)
        leaf = merkle.leaf_hash(line)
        leaves.append(leaf)
        link = _Link(entry.index + 1, leaf.hex(), entry.time)
    return _Chunk(b"".join(leaves), first, link, torn=bool(tail))


def _scan(
    log_path: Path, wanted: set[int], workers: int, progress: Callable[[int, int], None] | None = None
) -> _Scan:
    """Check every line (in parallel chunks when the file is large) and rebuild the tree."""
    scan = _Scan()
    try:
        bounds = _chunk_bounds(log_path)
    except OSError as exc:
        scan.failure = Failure(None, f"cannot read {log_path.name}: {exc.strerror}")
        return scan
    # fork, not spawn: spawn re-runs the caller's main module. Forking a process that has
    # other threads can deadlock the child, so such callers check in this process.
    if workers > 1 and len(bounds) > 2 and threading.active_count() == 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            chunks = pool.map(_check_chunk, *zip(*((str(log_path), a, b) for a, b in bounds), strict=True))
            _fold(scan, _reported(chunks, bounds, progress), wanted)
    else:
        chunks = (_check_chunk(str(log_path), a, b) for a, b in bounds)
        _fold(scan, _reported(chunks, bounds, progress), wanted)
    return scan


def _reported(
    chunks: Iterable[_Chunk], bounds: list[tuple[int, int]], progress: Callable[[int, int], None] | None
) -> Iterator[_Chunk]:
    """``chunks`` as they come, calling ``progress`` once each has been folded in."""
    total = bounds[-1][1] if bounds else 0
    for chunk, (_, stop) in zip(chunks, bounds, strict=False):
        yield chunk
        if progress is not None:
            progress(stop, total)


def _fold(scan: _Scan, chunks: Iterable[_Chunk], wanted: set[int]) -> None:
    """Join chunk results in order: chain across chunk edges, Merkle roots at wanted sizes."""
    edge = CompactRange()
    link = _Link()
    if 0 in wanted:
        scan.roots[0] = merkle.EMPTY_ROOT
    for chunk in chunks:
        if chunk.first is not None:
            scan.failure = link.check(chunk.first)
            if scan.failure is not None:
                break
        count = len(chunk.leaves) // merkle.HASH_SIZE
        for k in range(count):
            edge.append(chunk.leaves[k * merkle.HASH_SIZE : (k + 1) * merkle.HASH_SIZE])
            if edge.size in wanted:
                scan.roots[edge.size] = edge.root()
        if chunk.failure is not None:
            scan.failure = Failure(link.index + (chunk.failure.index or 0), chunk.failure.problem)
            break
        link = chunk.last or link
        if chunk.torn:
            scan.notes = ("ignored an incomplete final line (an append in progress or a torn write)",)
    scan.size, scan.root = edge.size, edge.root()


def _chunk_bounds(log_path: Path) -> list[tuple[int, int]]:
    """Split the file into runs of whole lines of about _CHUNK bytes."""
    size = log_path.stat().st_size
    bounds = []
    with log_path.open("rb") as f:
        start = 0
        while start < size:
            stop = min(start + _CHUNK, size)
            if stop < size:
                f.seek(stop)
                rest = f.read(MAX_ENTRY_BYTES + 1)
                newline = rest.find(b"\n")
                stop = size if newline < 0 else stop + newline + 1
            bounds.append((start, stop))
            start = stop
    return bounds


def _check_against(checkpoint: Checkpoint, scan: _Scan, label: str) -> Failure | None:
    if checkpoint.size > scan.size:
        return Failure(
            scan.size,
            f"the {label} covers {checkpoint.size} entries but the log has {scan.size}: "
            "entries were removed (truncation or rollback)",
        )
    if scan.roots.get(checkpoint.size) != checkpoint.root:
        return Failure(
            checkpoint.size - 1 if checkpoint.size else None,
            f"the first {checkpoint.size} entries do not hash to the {label}'s root: "
            "entries up to here were rewritten (a fork)",
        )
    return None


def _read_checkpoint(path: Path, key: PublicKey, origin: str) -> Checkpoint | None:
    try:
        note = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read {path.name}: {exc}") from None
    return open_checkpoint(note, key, origin=origin)


def _failed(origin: str, failure: Failure) -> VerifyReport:
    return VerifyReport(origin, 0, merkle.EMPTY_ROOT, "", False, failure=failure)
