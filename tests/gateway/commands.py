"""The ``veilbox`` command two ways: the real console script, and its entry point in this process.

Both return what a user sees — exit status, stdout and stderr — as a ``CompletedProcess``.
The script pays for a new interpreter and its imports on every call (seconds once a command
opens a workdir), so the suites run most commands through :func:`veilbox_in_process`, which
calls the script's own entry point, :func:`gateway.cli.main`, with its arguments and
environment; a few cases per suite still run :func:`veilbox_script`, end to end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from click.testing import CliRunner

from gateway.cli import main

VEILBOX = str(Path(sys.executable).with_name("veilbox"))
WIDTH = "200"
"""Wide enough that tables are never wrapped, whatever terminal runs the suite."""


def veilbox_script(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real console script, as a user runs it, with nothing of this process's environment but
    ``PATH`` (and ``PYTHONPATH``, so that it runs the code under test, as this process does)."""
    env = {"COLUMNS": WIDTH, "PATH": os.environ.get("PATH", "")}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    if token is not None:
        env["VEILBOX_TOKEN"] = token
    return subprocess.run([VEILBOX, *args], capture_output=True, text=True, check=False, env=env)


def veilbox_in_process(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """``veilbox ARGS`` through :func:`gateway.cli.main` in this process, with the environment the
    script would see (no ``VEILBOX_URL``, ``VEILBOX_TOKEN`` only if ``token`` is given)."""
    env: Mapping[str, str | None] = {"COLUMNS": WIDTH, "VEILBOX_URL": None, "VEILBOX_TOKEN": token}
    with CliRunner().isolation(env=env) as (stdout, stderr, _):
        argv, sys.argv = sys.argv, ["veilbox", *args]
        try:
            main()
            status = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                status = exc.code or 0
            else:  # as the interpreter does with a message given to exit
                print(exc.code, file=sys.stderr)
                status = 1
        finally:
            sys.argv = argv
            sys.stdout.flush()
            sys.stderr.flush()
        out, err = stdout.getvalue().decode(), stderr.getvalue().decode()
    return subprocess.CompletedProcess(["veilbox", *args], status, out, err)
