"""Helpers the suites share."""

from __future__ import annotations

from ledger import Ledger

ORIGIN = "test.veilbox/ledger"


def fill(log: Ledger, count: int, start: int = 0) -> None:
    """Append ``count`` varied entries in one durable batch."""
    log.append_many(
        (f"developer:dev{i % 5}", "job.submitted", f"job-{i}", {"rows": i, "note": "数据可用不可见"})
        for i in range(start, start + count)
    )
