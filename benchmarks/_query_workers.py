"""Peak memory of the enclave's worker processes, read from /proc (Linux only).

The kernel keeps each process's peak resident set (VmHWM); writing 5 to its ``clear_refs``
resets it, so the peak can be taken around one query at a time.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

_PROC = Path("/proc")
_WORKER_MODULE = b"sandbox._worker"


def worker_pids(ancestor: int) -> list[int]:
    """The enclave workers (``python -m sandbox._worker``) descended from process ``ancestor``."""
    parents: dict[int, int] = {}
    workers = []
    for entry in _PROC.iterdir() if _PROC.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
            command = (entry / "cmdline").read_bytes()
        except OSError:  # it ended while we looked
            continue
        pid = int(entry.name)
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        if _WORKER_MODULE in command.split(b"\0"):
            workers.append(pid)
    return [pid for pid in workers if _descends(pid, ancestor, parents)]


def reset_peaks(pids: list[int]) -> None:
    """Start each process's peak resident set afresh."""
    for pid in pids:
        with contextlib.suppress(OSError):
            (_PROC / str(pid) / "clear_refs").write_text("5", encoding="ascii")


def peak_mib(pids: list[int]) -> float | None:
    """The largest peak resident set among ``pids`` since their last reset, in MiB."""
    peaks = []
    for pid in pids:
        try:
            status = (_PROC / str(pid) / "status").read_text(encoding="utf-8")
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks, default=None)


def _descends(pid: int, ancestor: int, parents: dict[int, int]) -> bool:
    seen = set()
    while pid in parents and pid not in seen:
        if pid == ancestor:
            return True
        seen.add(pid)
        pid = parents[pid]
    return pid == ancestor
