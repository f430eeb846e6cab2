"""The command line starts without loading the heavy machinery its commands use."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_cli_loads_no_engine_or_detector() -> None:
    probe = "import sys, gateway.cli; print(','.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
        .stdout.strip()
        .split(",")
    )
    for heavy in (
        "duckdb",
        "presidio_analyzer",
        "presidio_anonymizer",
        "opendp",
        "sqlglot",
        "pyarrow",
        "diffprivlib",
    ):
        assert heavy not in loaded, f"`veilbox --help` should not import {heavy}"
