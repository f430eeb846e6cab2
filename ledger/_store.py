"""The ledger store: durable, ordered appends from many threads and processes, and proofs.

The directory's files are described in _layout.

An append writes its entries, then their node hashes, then their index records (the index
is what makes entries visible to other processes), releases the lock and only then
fdatasyncs the entries file, so appenders in other processes write while this one waits
on the disk; any fdatasync covers every write made before it, so each acknowledged entry
is durable together with everything before it. Threads of one process share a leader
that writes the whole queue in one batch (group commit).

Recovery: bytes past the last indexed entry are a crashed writer's. Complete entries that
chain correctly are adopted (they may have been acknowledged after an index write was
lost); an incomplete final line is a torn write and is cut off. Anything else that fails
its checks stops the open with LedgerCorruptError: it is damage or tampering, never
silently discarded.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import merkle
from ledger._commit import GroupCommit
from ledger._compact import CompactRange, frontier_positions, node_position, nodes_count
from ledger._fs import atomic_write
from ledger._layout import (
    CHECKPOINT_FILE,
    INDEX_FILE,
    LOCK_FILE,
    LOG_FILE,
    NODES_FILE,
    close_all,
    exclusive,
    init_or_load,
    prepare_directory,
    pwrite,
)
from ledger.entry import GENESIS_PREV, MAX_ENTRY_BYTES, TIME_TAIL_BYTES, Draft, Entry, time_from_tail, utc_now
from ledger.errors import (
    CheckpointError,
    LedgerCorruptError,
    LedgerError,
    LedgerIOError,
    ProofError,
)
from ledger.note import Checkpoint, PublicKey, check_origin, open_checkpoint, sign_checkpoint

_HASH = merkle.HASH_SIZE
_OFFSET = struct.Struct("<Q")
_SCAN_CHUNK = 1 << 22
_READ_PAGE = 1000


@dataclass(frozen=True)
class Receipt:
    """Proof of acceptance: the entry's position, leaf hash and time. Returned once durable."""

    index: int
    leaf_hash: bytes
    time: str


class Ledger:
    """An append-only, hash-chained Merkle log in a directory. Safe across threads and processes.

    >>> import tempfile
    >>> with Ledger.open(tempfile.mkdtemp() + "/log", origin="example.org/log") as log:
    ...     receipt = log.append("alice", "job.submitted", "job-1", {"rows": 10})
    ...     proof = log.inclusion_proof(receipt.index)
    ...     merkle.verify_inclusion(log.entry(0).raw, 0, log.size, proof, log.root())
    True
    """

    def __init__(self, path: Path, origin: str, key: Ed25519PrivateKey, fds: dict[str, int]) -> None:
        self._path = path
        self._origin = origin
        self._key = key
        self._log, self._index, self._nodes, self._lock = (
            fds[LOG_FILE], fds[INDEX_FILE], fds[NODES_FILE], fds[LOCK_FILE]
        )  # fmt: skip
        self._mutex = threading.Lock()  # one thread in this instance touches the files
        self._commit: GroupCommit[Draft, Receipt] = GroupCommit(self._write_batch, self._sync_log)
        self._failed: str | None = None
        self._closed = False
        self._n = 0
        self._end = 0
        self._edge = CompactRange()
        self._prev = GENESIS_PREV
        self._last_time = ""

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, origin: str | None = None) -> Ledger:
        """Open the ledger at ``path``, creating it (and its signing key) if it does not exist.

        ``origin`` names the log in its checkpoints; it is fixed when the ledger is created
        and, if given later, must match. Raises NotALedgerError for a path that holds
        something else, LedgerKeyError for an unusable key, LedgerCorruptError when stored
        entries fail checks that recovery must not repair.
        """
        root = Path(path)
        if origin is not None:
            check_origin(origin)
        prepare_directory(root)
        fds: dict[str, int] = {}
        try:
            for name in (LOCK_FILE, LOG_FILE, INDEX_FILE, NODES_FILE):
                fds[name] = os.open(root / name, os.O_RDWR | os.O_CREAT, 0o644)
            with exclusive(fds[LOCK_FILE]):
                found_origin, key = init_or_load(root, origin)
                ledger = cls(root, found_origin, key, fds)
                ledger._recover()
        except OSError as exc:
            close_all(fds.values())
            raise LedgerIOError(f"cannot open ledger {root}: {exc.strerror}") from None
        except BaseException:
            close_all(fds.values())
            raise
        return ledger

    def close(self) -> None:
        """Release the files. Appends in flight in other threads finish first."""
        with self._mutex:
            if not self._closed:
                self._closed = True
                close_all((self._log, self._index, self._nodes, self._lock))

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> Path:
        return self._path

    @property
    def origin(self) -> str:
        """The log's name, the first line of each checkpoint."""
        return self._origin

    def public_key(self) -> PublicKey:
        """The checkpoint signing key's name and 32 raw public bytes."""
        return PublicKey.from_private(self._origin, self._key)

    # ----------------------------------------------------------------- appending

    def append(
        self, actor: str, action: str, subject: str, details: Mapping[str, Any] | None = None
    ) -> Receipt:
        """Append one entry; returns only once it is durable on disk.

        Raises EntryError (nothing written) for a bad field or an entry over 1 MiB, and
        LedgerIOError if the disk refused the write or the sync.
        """
        return self._commit.submit([Draft.build(actor, action, subject, details)])[0]

    def append_many(self, records: Iterable[tuple[str, str, str, Mapping[str, Any] | None]]) -> list[Receipt]:
        """Append (actor, action, subject, details) records in order, durably, with one sync.

        Every record is validated before any is written: one bad record refuses them all.
        """
        drafts = [Draft.build(*record) for record in records]
        return self._commit.submit(drafts) if drafts else []

    def _write_batch(self, drafts: list[Draft]) -> list[Receipt]:
        """Write entries, node hashes and index records under the lock; the caller syncs."""
        with self._mutex, self._locked():
            if self._failed:
                raise LedgerIOError(self._failed)
            time = max(utc_now(), self._last_time)
            edge = self._edge.copy()
            n, end, prev = self._n, self._end, self._prev
            lines: list[bytes] = []
            nodes: list[bytes] = []
            offsets: list[bytes] = []
            receipts: list[Receipt] = []
            for draft in drafts:
                raw = draft.render(n, time, prev)
                leaf = merkle.leaf_hash(raw)
                nodes.extend(edge.append(leaf))
                lines.append(raw)
                end += len(raw) + 1
                offsets.append(_OFFSET.pack(end))
                receipts.append(Receipt(n, leaf, time))
                n += 1
                prev = leaf.hex()
            lines.append(b"")
            try:
                pwrite(self._log, b"\n".join(lines), self._end)
                pwrite(self._nodes, b"".join(nodes), nodes_count(self._n) * _HASH)
                pwrite(self._index, b"".join(offsets), self._n * _OFFSET.size)
            except OSError as exc:
                self._undo_to(self._n, self._end)
                raise LedgerIOError(
                    f"the disk refused the append ({exc.strerror}); nothing was written"
                ) from None
            self._n, self._end, self._edge, self._prev, self._last_time = n, end, edge, prev, time
            return receipts

    def _sync_log(self) -> None:
        try:
            os.fdatasync(self._log)
        except OSError as exc:
            # After a failed sync the kernel may have dropped the dirty pages: nothing
            # written since the last good sync can be vouched for, so stop appending.
            self._failed = (
                f"syncing {self._path / LOG_FILE} failed ({exc.strerror}); the ledger refuses "
                "further appends until it is reopened and verified"
            )
            raise LedgerIOError(self._failed) from None

    def _undo_to(self, n: int, end: int) -> None:
        for fd, length in (
            (self._index, n * _OFFSET.size),
            (self._nodes, nodes_count(n) * _HASH),
            (self._log, end),
        ):
            try:
                os.ftruncate(fd, length)
            except OSError:
                self._failed = "a failed append could not be rolled back; reopen the ledger to recover"

    # ----------------------------------------------------------------- reading

    @property
    def size(self) -> int:
        """How many entries the log holds now (across every process appending to it)."""
        with self._mutex, self._locked():
            return self._n

    def entry(self, index: int) -> Entry:
        """The entry at ``index``. Raises ProofError when the log is shorter."""
        return self.entries(index, index + 1)[0]

    def entries(self, start: int = 0, stop: int | None = None) -> list[Entry]:
        """Entries ``start`` ≤ i < ``stop`` (default: to the end), parsed and checked."""
        with self._mutex, self._locked():
            stop = self._n if stop is None else stop
            if not 0 <= start <= stop <= self._n:
                raise ProofError(f"entries [{start}, {stop}) are outside a log of {self._n} entries")
            return self._read_entries(start, stop)

    def iter_entries(self, start: int = 0, stop: int | None = None) -> Iterator[Entry]:
        """Iterate over entries page by page without holding the lock between pages."""
        stop = self.size if stop is None else stop
        for lo in range(start, stop, _READ_PAGE):
            yield from self.entries(lo, min(lo + _READ_PAGE, stop))

    def root(self, size: int | None = None) -> bytes:
        """The Merkle root of the first ``size`` entries (default: all)."""
        with self._mutex, self._locked():
            size = self._n if size is None else size
            self._check_size(size)
            return self._subtree(0, size) if size else merkle.EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 6962 inclusion proof of entry ``index`` in the tree of ``size`` (default: all)."""
        with self._mutex, self._locked():
            size = self._n if size is None else size
            self._check_size(size)
            if not 0 <= index < size:
                raise ProofError(f"entry {index} is not in a tree of {size} entries")
            return merkle.inclusion_path(index, size, self._subtree)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 6962 proof that the tree of ``new_size`` (default: all) extends that of ``old_size``."""
        with self._mutex, self._locked():
            new_size = self._n if new_size is None else new_size
            self._check_size(new_size)
            if not 0 <= old_size <= new_size:
                raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
            return merkle.consistency_path(old_size, new_size, self._subtree)

    # ----------------------------------------------------------------- checkpoints

    def checkpoint(self) -> str:
        """Sign a checkpoint over every durable entry, store it as the latest, and return it."""
        with self._mutex, self._locked():
            self._sync_log()
            root = self._subtree(0, self._n) if self._n else merkle.EMPTY_ROOT
            self._check_extends_latest(root)
            signed = sign_checkpoint(self._origin, self._n, root, self._origin, self._key)
            try:
                atomic_write(self._path / CHECKPOINT_FILE, signed.note.encode())
            except OSError as exc:
                raise LedgerIOError(f"cannot store the checkpoint: {exc.strerror}") from None
            return signed.note

    def _check_extends_latest(self, root: bytes) -> None:
        """Refuse to sign a tree that does not extend the last one signed: never sign a fork.

        The proof comes from the stored node hashes, so this also catches damaged derived
        files before their wrong root could be signed.
        """
        latest = self.latest_checkpoint()
        if latest is None:
            return
        if latest.size > self._n:
            raise LedgerCorruptError(
                f"the log has {self._n} entries but its last checkpoint signed {latest.size}: "
                "entries were removed; run 'veilbox ledger verify'"
            )
        proof = merkle.consistency_path(latest.size, self._n, self._subtree)
        if not merkle.verify_consistency(latest.size, self._n, latest.root, root, proof):
            raise LedgerCorruptError(
                f"the tree does not extend the last checkpoint (size {latest.size}); refusing to sign. "
                f"Run 'veilbox ledger rebuild {self._path}', then 'veilbox ledger verify'"
            )

    def rebuild(self) -> None:
        """Re-derive the index and node files from the entries, checking every entry on the way."""
        with self._mutex, self._locked(sync=False):
            self._rebuild()

    def latest_checkpoint(self) -> Checkpoint | None:
        """The stored latest checkpoint, verified with this ledger's key, or None if none yet."""
        try:
            note = (self._path / CHECKPOINT_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"the stored checkpoint cannot be read: {exc}") from None
        return open_checkpoint(note, self.public_key(), origin=self._origin)

    # ----------------------------------------------------------------- internals

    @contextmanager
    def _locked(self, *, sync: bool = True) -> Iterator[None]:
        """Hold the cross-process lock, first catching up with other writers unless told not to."""
        if self._closed:
            raise LedgerError("the ledger is closed")
        try:
            with exclusive(self._lock):
                if sync:
                    self._sync_state()
                yield
        except OSError as exc:
            raise LedgerIOError(f"the operating system refused a ledger operation: {exc}") from None

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self._n:
            raise ProofError(f"the log has {self._n} entries, not {size}")

    def _node(self, level: int, index: int) -> bytes:
        data = os.pread(self._nodes, _HASH, node_position(level, index) * _HASH)
        if len(data) != _HASH:
            raise LedgerCorruptError(f"{NODES_FILE} is shorter than the log; reopen the ledger to rebuild it")
        return data

    def _subtree(self, lo: int, hi: int) -> bytes:
        width = hi - lo
        if width & (width - 1) == 0:
            level = width.bit_length() - 1
            return self._node(level, lo >> level)
        k = merkle.split_point(width)
        return merkle.node_hash(self._subtree(lo, lo + k), self._subtree(lo + k, hi))

    def _offset(self, index: int) -> int:
        """Start of entry ``index`` in the log (end of the one before)."""
        if index == 0:
            return 0
        data = os.pread(self._index, _OFFSET.size, (index - 1) * _OFFSET.size)
        return int(_OFFSET.unpack(data)[0])

    def _read_entries(self, start: int, stop: int) -> list[Entry]:
        if start == stop:
            return []
        lo, hi = self._offset(start), self._offset(stop)
        lines = [] if not 0 <= lo < hi <= self._end else os.pread(self._log, hi - lo, lo).split(b"\n")
        if len(lines) != stop - start + 1 or lines[-1]:
            raise LedgerCorruptError(
                f"{INDEX_FILE} does not match {LOG_FILE}; run 'veilbox ledger rebuild {self._path}'"
            )
        return [Entry.parse(line) for line in lines[:-1]]

    def _sync_state(self) -> None:
        """Bring this instance up to date with what other processes committed (lock held)."""
        index_size = os.fstat(self._index).st_size
        n = index_size // _OFFSET.size
        if index_size % _OFFSET.size:  # a writer died mid-index-write: uncommitted
            os.ftruncate(self._index, n * _OFFSET.size)
        if n != self._n:
            self._load_state(n)
        if os.fstat(self._log).st_size != self._end:
            self._adopt_tail()

    def _load_state(self, n: int) -> None:
        """Take the state of the first ``n`` indexed entries; on damage, raise and keep the old state."""
        edge = CompactRange(n, [self._node(level, index) for level, index in frontier_positions(n)])
        end = self._offset(n)
        if n == 0:
            self._n, self._edge, self._end, self._prev, self._last_time = 0, edge, end, GENESIS_PREV, ""
            return
        start = self._offset(n - 1)
        if not 0 <= start < end <= start + MAX_ENTRY_BYTES + 1:
            raise LedgerCorruptError(f"{INDEX_FILE} holds impossible offsets; run 'veilbox ledger rebuild'")
        # Other writers' appends bring every writer here once per append: read only the tail.
        tail = min(TIME_TAIL_BYTES, end - start)
        last_time = time_from_tail(os.pread(self._log, tail, end - tail))
        if last_time is None:
            raise LedgerCorruptError(f"entry {n - 1} cannot be read back; run 'veilbox ledger verify'")
        prev = self._node(0, n - 1).hex()
        self._n, self._edge, self._end, self._prev, self._last_time = n, edge, end, prev, last_time

    def _recover(self) -> None:
        """On open: check the derived files against the log's tail; rebuild them if they disagree."""
        with self._mutex:
            try:
                self._sync_state()
                if self._n:
                    last = self._read_entries(self._n - 1, self._n)[0]
                    before = self._node(0, self._n - 2).hex() if self._n > 1 else GENESIS_PREV
                    if (
                        last.index != self._n - 1
                        or last.leaf_hash != self._node(0, self._n - 1)
                        or last.prev != before
                    ):
                        raise LedgerCorruptError("derived files disagree with the log")
                return
            except (LedgerCorruptError, struct.error):
                pass  # the derived files cannot be trusted: rebuild them from the entries
            self._rebuild()

    def _rebuild(self) -> None:
        os.ftruncate(self._index, 0)
        os.ftruncate(self._nodes, 0)
        self._load_state(0)
        self._adopt_tail()

    def _adopt_tail(self) -> None:
        """Index the complete, chaining entries past the last indexed one; cut off a torn tail.

        Only an incomplete final line counts as torn. A complete line that fails its checks
        stops here: it is damage or tampering, and cutting it could destroy evidence.
        """
        size = os.fstat(self._log).st_size
        if size < self._end:
            raise LedgerCorruptError(
                f"{LOG_FILE} is shorter than its index: entries were removed; run 'veilbox ledger verify'"
            )
        pos = self._end
        while pos < size:
            chunk = os.pread(self._log, min(max(_SCAN_CHUNK, MAX_ENTRY_BYTES + 1), size - pos), pos)
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:
                if pos + len(chunk) < size:
                    raise LedgerCorruptError(f"{LOG_FILE} has an over-long line at byte {pos}")
                os.ftruncate(self._log, pos)  # an incomplete final line: a torn write
                return
            self._index_lines(chunk[:cut].split(b"\n")[:-1])
            pos = self._end

    def _index_lines(self, lines: list[bytes]) -> None:
        edge, n, pos, prev, last_time = self._edge.copy(), self._n, self._end, self._prev, self._last_time
        nodes: list[bytes] = []
        offsets: list[bytes] = []
        for line in lines:
            entry = _parse_at(line, n, pos)
            if entry.prev != prev or entry.time < last_time:
                raise LedgerCorruptError(
                    f"entry {n} at byte {pos} of {LOG_FILE} does not chain to the entry before it; "
                    "run 'veilbox ledger verify' and restore from backup"
                )
            leaf = merkle.leaf_hash(line)
            nodes.extend(edge.append(leaf))
            pos += len(line) + 1
            offsets.append(_OFFSET.pack(pos))
            n, prev, last_time = n + 1, leaf.hex(), entry.time
        pwrite(self._nodes, b"".join(nodes), nodes_count(self._n) * _HASH)
        pwrite(self._index, b"".join(offsets), self._n * _OFFSET.size)
        self._n, self._end, self._edge, self._prev, self._last_time = n, pos, edge, prev, last_time


def _parse_at(line: bytes, expected: int, pos: int) -> Entry:
    try:
        entry = Entry.parse(line)
    except LedgerCorruptError as exc:
        raise LedgerCorruptError(f"entry {expected} at byte {pos} of {LOG_FILE}: {exc}") from None
    if entry.index != expected:
        raise LedgerCorruptError(
            f"entry at byte {pos} of {LOG_FILE} has index {entry.index}, expected {expected}"
        )
    return entry
