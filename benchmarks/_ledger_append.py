"""Durable append benchmarks: each append configuration against the physical fdatasync floor.

Every append configuration alternates round by round with the physical floor (one
``os.write`` + ``os.fdatasync`` per entry line, in the ledger's own directory), so the
ratio to the disk survives drift on a shared machine.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import statistics
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from multiprocessing.queues import SimpleQueue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from time import perf_counter
from types import TracebackType

from benchmarks._ledger_workload import ORIGIN, Entry, Sizes, Workload
from benchmarks._report import Options, Paired, Record, check, measured, paired, progress
from ledger import Ledger, verify_log

# A child that cannot open its ledger must fail the run rather than leave it waiting forever.
_START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class _Appender:
    """One append configuration: how many appenders, entries per call, threads or processes."""

    engine: str
    workers: int = 1
    batch: int = 1
    processes: bool = False
    target_per_s: int | None = None

    @property
    def how(self) -> str:
        """How this configuration shares disk syncs, for the record's note."""
        if self.processes:
            return "each process opens its own Ledger; the file lock orders writes and each syncs outside it."
        if self.workers > 1:
            return (
                "the threads share a group commit: one write and one fdatasync per queue of waiting entries."
            )
        if self.batch > 1:
            return f"one durable batch of {self.batch} per call: one fdatasync per batch."
        return "one append call at a time, each waiting for its own fdatasync."


_APPENDERS = (
    _Appender("append, 1 appender", target_per_s=20_000),
    _Appender("append_many(100), 1 appender", batch=100, target_per_s=20_000),
    _Appender("append, 4 threads, one Ledger", workers=4),
    _Appender("append, 16 threads, one Ledger", workers=16, target_per_s=10_000),
    _Appender("append, 4 processes, a Ledger each", workers=4, processes=True),
    _Appender("append, 16 processes, a Ledger each", workers=16, processes=True, target_per_s=10_000),
)


def append_records(options: Options, sizes: Sizes) -> list[Record]:
    """Records for the floor and for every append configuration, each paired with the floor."""
    directory = options.scratch / "appends"
    workload = Workload(f"{options.seed}/appends")
    line = _sample_line(directory / "sample", workload)
    results = []
    for number, appender in enumerate(_APPENDERS):
        progress(f"ledger: {appender.engine}")
        results.append((appender, _measure(appender, directory / f"ledger-{number}", line, sizes, workload)))
    shutil.rmtree(directory)
    return _describe_appends(results, sizes, len(line))


def _sample_line(path: Path, workload: Workload) -> bytes:
    """The bytes of one real entry line, for the floor to write."""
    with Ledger.open(path, origin=ORIGIN) as log:
        log.append(*workload.take(1)[0])
        return log.entry(0).raw + b"\n"


def _measure(appender: _Appender, path: Path, line: bytes, sizes: Sizes, workload: Workload) -> Paired:
    """Rounds of ``appender`` paired with the floor; then the ledger must hold exactly what was appended."""
    per_round = _per_round(appender, sizes)
    with _appending(appender, path) as one_round, _Floor(path / ".fdatasync-floor", line) as floor:
        result = paired(
            lambda: one_round(workload.take(per_round)),
            lambda: floor.round(sizes.appends),
            sizes.rounds,
            warmup=1,
        )
    _check_ledger(path, (sizes.rounds + 1) * per_round)
    return result


def _per_round(appender: _Appender, sizes: Sizes) -> int:
    return sizes.batched if appender.batch > 1 else sizes.appends


@contextmanager
def _appending(appender: _Appender, path: Path) -> Iterator[Callable[[list[Entry]], float]]:
    """A function that appends entries as ``appender`` does and returns the seconds per entry."""
    with Ledger.open(path, origin=ORIGIN) as log:
        if not appender.processes:
            yield partial(_per_entry, partial(_in_this_process, log), appender)
            return
    # The parent created the ledger above but holds nothing open while its children append.
    yield partial(_per_entry, partial(_in_processes, path), appender)


def _per_entry(
    append: Callable[[list[list[Entry]], int], float], appender: _Appender, entries: list[Entry]
) -> float:
    chunks = [entries[i :: appender.workers] for i in range(appender.workers)]
    return append(chunks, appender.batch) / len(entries)


def _feed(log: Ledger, entries: Sequence[Entry], batch: int) -> None:
    """One appender's work: each call returns only once its entries are durable."""
    if batch == 1:
        for entry in entries:
            log.append(*entry)
    else:
        for i in range(0, len(entries), batch):
            log.append_many(entries[i : i + batch])


def _in_this_process(log: Ledger, chunks: list[list[Entry]], batch: int) -> float:
    """Seconds for one thread per chunk, all sharing ``log``, to append every chunk."""
    if len(chunks) == 1:
        start = perf_counter()
        _feed(log, chunks[0], batch)
        return perf_counter() - start
    start_line = threading.Barrier(len(chunks) + 1)
    errors: list[BaseException] = []

    def work(chunk: list[Entry]) -> None:
        start_line.wait()
        try:
            _feed(log, chunk, batch)
        except BaseException as exc:  # raised again below, where it can fail the run
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    start_line.wait()
    start = perf_counter()
    for thread in threads:
        thread.join()
    elapsed = perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def _in_processes(path: Path, chunks: list[list[Entry]], batch: int) -> float:
    """Seconds for one forked process per chunk, each with its own Ledger on ``path``, to append.

    Forking and opening happen before the common start and closing after the last report,
    so only the appends are timed.
    """
    context = multiprocessing.get_context("fork")
    start_line = context.Barrier(len(chunks) + 1)
    done: SimpleQueue[int] = context.SimpleQueue()
    children = [
        context.Process(target=_child, args=(path, chunk, batch, start_line, done)) for chunk in chunks
    ]
    for child in children:
        child.start()
    try:
        start_line.wait(_START_TIMEOUT_S)
        start = perf_counter()
        appended = sum(done.get() for _ in children)
        elapsed = perf_counter() - start
    finally:
        for child in children:
            child.join()
    failed = appended != sum(map(len, chunks)) or any(child.exitcode for child in children)
    check(not failed, "an appender process failed; its traceback is above")
    return elapsed


def _child(path: Path, chunk: list[Entry], batch: int, start_line: Barrier, done: SimpleQueue[int]) -> None:
    """One appender process: open, wait for the common start, append, report how many."""
    appended = 0
    try:
        with Ledger.open(path, origin=ORIGIN) as log:
            start_line.wait(_START_TIMEOUT_S)
            _feed(log, chunk, batch)
            appended = len(chunk)
            done.put(appended)  # before closing: closing is not part of appending
    finally:
        if not appended:
            # Nobody should wait out the timeout for a child that will never arrive.
            start_line.abort()
            done.put(0)


class _Floor:
    """The physical floor for a synchronous appender: one os.write + os.fdatasync per entry line."""

    def __init__(self, path: Path, line: bytes) -> None:
        self._path = path
        self._line = line
        self._written = 0
        self._fd = -1

    def __enter__(self) -> _Floor:
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        size = os.fstat(self._fd).st_size
        os.close(self._fd)
        if kind is None:
            check(size == self._written, f"the floor wrote {size} bytes, not {self._written}")

    def round(self, n: int) -> float:
        """Seconds per entry to write and sync ``n`` lines, one at a time."""
        fd, line = self._fd, self._line
        start = perf_counter()
        for _ in range(n):
            os.write(fd, line)
            os.fdatasync(fd)
        elapsed = perf_counter() - start
        self._written += n * len(line)
        return elapsed / n


def _check_ledger(path: Path, expected: int) -> None:
    """The ledger holds exactly ``expected`` entries and verifies from its entries up."""
    with Ledger.open(path, origin=ORIGIN) as log:
        size = log.size
    check(size == expected, f"{path.name} holds {size} entries, {expected} were appended")
    report = verify_log(path)
    check(report.ok and report.size == expected, f"{path.name}: {report.summary()}")


def _describe_appends(results: list[tuple[_Appender, Paired]], sizes: Sizes, line_bytes: int) -> list[Record]:
    # The first configuration is the plain single appender, the one the floor stands for.
    floor_samples = results[0][1].b
    floor_s = statistics.median(floor_samples)
    floor_note = (
        f"the physical floor: os.write + os.fdatasync of a {line_bytes}-byte entry line per entry, to a "
        f"plain file in the ledger's directory: {floor_s * 1e6:.0f} µs per sync (the rounds paired with the "
        "single appender). Every append row alternates round by round with its own floor rounds; its ratio "
        "is its time per entry ÷ the floor's."
    )
    floor = measured(
        "durable append",
        sizes.appends,
        "floor: os.write + os.fdatasync",
        floor_samples,
        ops=1,
        note=floor_note,
    )
    appended = [_append_record(appender, result, sizes) for appender, result in results]
    appended[0] = _explain_single_appender(appended, floor_s)
    return [floor, *appended]


def _append_record(appender: _Appender, result: Paired, sizes: Sizes) -> Record:
    target = None
    if appender.target_per_s is not None:
        target = (_target_text(appender), partial(_at_least, appender.target_per_s))
    return measured(
        "durable append",
        _per_round(appender, sizes),
        appender.engine,
        result.a,
        ops=1,
        ratio=result.ratio,
        target=target,
        note=appender.how,
    )


def _target_text(appender: _Appender) -> str:
    if appender.workers == 1:
        return f"≥ {appender.target_per_s:,}/s from one appender"
    return f"≥ {appender.target_per_s:,}/s with {appender.workers} concurrent appenders"


def _at_least(per_s: int, record: Record) -> bool:
    return record.ops_per_s is not None and record.ops_per_s >= per_s


def _explain_single_appender(records: list[Record], floor_s: float) -> Record:
    """Say what bounds one synchronous appender (the fdatasync floor) and what meets the target instead."""
    single = records[0]
    meeting = [r for r in records if r.met and r.target == single.target and r is not single]
    if meeting:
        best = max(meeting, key=lambda r: r.ops_per_s or 0)
        verdict = f"{single.target} is met by batching: {best.engine} reaches {best.ops_per_s:,.0f}/s."
    else:
        verdict = f"no single-appender configuration met {single.target} on this machine."
    honest = (
        f"A synchronous appender waits for one fdatasync per entry, so it cannot beat the floor of "
        f"{floor_s * 1e6:.0f} µs per entry ({1 / floor_s:,.0f}/s) on this disk; {verdict}"
    )
    return replace(single, note=honest)
