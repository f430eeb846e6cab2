"""Where the gateway keeps its own state in a working directory, beside the enclave's.

::

    WORKDIR/
      control.sqlite        the control plane (organisations … jobs); never raw data
      review/               the review gate: queue, decisions, the checked results
      releases/JOB/         released artifacts (result files, manifest, signature)
      release.pub           the platform's release-verification key (a vkey line)
      credentials.json      tokens the demo made, for continuing by hand (demo only)

The enclave's own files (``enclave/``, ``catalog.sqlite``, ``budget.sqlite``,
``quarantine/``, ``ledger/``) are laid out by :mod:`sandbox.enclave`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ledger import PublicKey


@dataclass(frozen=True)
class Layout:
    """The gateway's paths in one working directory."""

    root: Path

    @property
    def review(self) -> Path:
        return self.root / "review"

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def release_key(self) -> Path:
        return self.root / "release.pub"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.sqlite"

    @property
    def budget(self) -> Path:
        return self.root / "budget.sqlite"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials.json"

    def publish_release_key(self, vkey: str) -> None:
        """Write the release-verification key where verifiers and the API read it."""
        staging = self.release_key.with_name(f".release.pub.{os.getpid()}")
        staging.write_text(vkey + "\n", encoding="utf-8")
        os.replace(staging, self.release_key)

    def release_public_key(self) -> PublicKey | None:
        """The published release key, or None before the runner first started."""
        try:
            return PublicKey.from_vkey(self.release_key.read_text(encoding="utf-8").strip())
        except FileNotFoundError:
            return None
