"""Fixtures shared by every suite: fresh ledger directories on the real filesystem."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import Ledger
from tests.support import ORIGIN


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Path:
    """A path where a new ledger will be created."""
    return tmp_path / "ledger"


@pytest.fixture
def log(ledger_dir: Path) -> Iterator[Ledger]:
    """An open, empty ledger."""
    with Ledger.open(ledger_dir, origin=ORIGIN) as opened:
        yield opened
