"""The limits every enclave job runs under: light to import, so the CLI can offer them as options."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Per-job limits: wall time, CPU time, engine memory and threads, result size."""

    timeout_s: float = 30.0
    cpu_s: float = 60.0
    memory_mb: int = 1024
    threads: int = 1
    max_result_bytes: int = 64 << 20

    @property
    def address_space_mb(self) -> int:
        # The engine's own limit stops a query cleanly; this process limit, with room for
        # the interpreter, libraries and thread stacks, stops anything that slips past it.
        return self.memory_mb + 2048
