"""The runner's process: started by the app, woken through one pipe, reporting through another.

One thread per enclave worker takes :class:`gateway.runner.Runner` steps, so jobs run in
the sandbox side by side while everything else a step does is serialized by the runner.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from gateway.runner import Runner
from sandbox.limits import Limits

IDLE_SECONDS = 0.5
"""How long an idle thread sleeps when nobody wakes it."""
SWEEP_SECONDS = 30.0
"""How often the runner deletes what ended scenarios left behind."""
OVERSIGHT_SECONDS = 30.0
"""How often the runner scans for incidents, checks deadlines and sends webhooks."""
_log = logging.getLogger("veilbox.runner")


def serve(
    workdir: Path, url: str | None, wake: Connection, progress: Connection, workers: int, limits: Limits
) -> None:
    """The runner process: one thread per enclave worker takes steps while there is work.

    ``wake`` is the read end of a pipe from the app: a byte means "look now", its closing
    means "stop". A pipe, unlike a shared lock, cannot be left held by a process that died.
    ``progress`` is the write end of a pipe back: a byte after every step says "a job moved",
    so requests waiting on a job answer at once. Jobs run in the sandbox side by side;
    everything else a step does is serialized by the runner (see ``Runner._serial``).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s runner %(levelname)s %(message)s")
    os.set_blocking(progress.fileno(), False)
    runner = Runner.open(workdir, url=url, workers=workers, limits=limits)
    steps = _Steps(runner, progress)
    threads = [
        threading.Thread(target=steps.work, name=f"veilbox-steps-{n}", daemon=True)
        for n in range(runner.enclave.pool.workers)
    ]
    watching = threading.Event()
    watch = threading.Thread(target=_watch, args=(runner, watching), name="veilbox-oversight", daemon=True)
    for thread in [*threads, watch]:
        thread.start()
    swept = time.monotonic()
    try:
        while steps.failure is None:
            if time.monotonic() - swept > SWEEP_SECONDS:
                runner.sweep()
                swept = time.monotonic()
            if wake.poll(IDLE_SECONDS):
                try:
                    while wake.poll():
                        wake.recv_bytes()
                except EOFError:
                    return
                steps.look()
    finally:
        steps.stop()
        watching.set()
        for thread in [*threads, watch]:
            thread.join()
        runner.close()
    raise steps.failure


def _watch(runner: Runner, stopping: threading.Event) -> None:
    """The oversight sweep on its own thread, so that sending webhooks never holds up jobs."""
    while not stopping.wait(OVERSIGHT_SECONDS):
        try:
            runner.oversee()
        except Exception:  # a sweep that fails is logged and tried again next time
            _log.exception("the oversight sweep failed")


class _Steps:
    """Threads taking the runner's steps, sleeping when there is nothing to do until told to look."""

    def __init__(self, runner: Runner, progress: Connection) -> None:
        self._runner, self._progress = runner, progress
        self._told = threading.Condition()
        self._calls = 0
        self._stopping = False
        self._sending = threading.Lock()
        self.failure: BaseException | None = None

    def look(self) -> None:
        """Wake one idle thread; one that claims a job wakes the next (see ``work``)."""
        with self._told:
            self._calls += 1
            self._told.notify()

    def stop(self) -> None:
        """Let each thread finish its step and end."""
        with self._told:
            self._stopping = True
            self._told.notify_all()

    def work(self) -> None:
        seen = 0
        while True:
            with self._told:
                if self._stopping:
                    return
                seen = self._calls
            try:
                # Every thread waking for every job would have all but one claim nothing, holding
                # up the one that runs it; a claim that leaves jobs waiting wakes one more thread,
                # so a queue still spreads over the workers.
                moved = self._runner.step(more=self.look)
            except BaseException as exc:  # a step that cannot be taken stops the runner, visibly
                self.failure = exc
                self.stop()
                return
            if moved:
                # A full pipe already holds unread news; a closed one has no reader left.
                with self._sending, contextlib.suppress(OSError):
                    self._progress.send_bytes(b"p")
                continue
            with self._told:
                if self._calls == seen and not self._stopping:
                    self._told.wait(IDLE_SECONDS)


@dataclass
class RunnerProcess:
    """The app's handle on its runner process."""

    process: multiprocessing.process.BaseProcess
    _wake: Connection
    _progress: Connection

    def follow(self, moved: Callable[[], None]) -> None:
        """Call ``moved`` (from a thread of its own) each time the runner reports a step taken."""

        def read() -> None:
            with contextlib.suppress(EOFError, OSError):  # the runner exited
                while True:
                    self._progress.recv_bytes()
                    moved()

        threading.Thread(target=read, name="veilbox-runner-progress", daemon=True).start()

    def wake(self) -> None:
        """Ask the runner to look for work now; never blocks, even if the runner has died."""
        with contextlib.suppress(OSError):  # a full pipe already holds a wake-up; a dead one, none
            self._wake.send_bytes(b"w")

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Let the runner finish its step and exit; kill it if it does not."""
        self._wake.close()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


def start(
    workdir: Path, url: str | None = None, *, workers: int = 2, limits: Limits | None = None
) -> RunnerProcess:
    """Start a runner process over ``workdir`` with ``workers`` enclave workers under ``limits``."""
    context = multiprocessing.get_context("spawn")
    reader, writer = context.Pipe(duplex=False)
    news, progress = context.Pipe(duplex=False)
    process = context.Process(
        target=serve,
        args=(Path(workdir), url, reader, progress, workers, limits or Limits()),
        name="veilbox-runner",
        daemon=True,
    )
    process.start()
    # Only the runner keeps these ends, so each pipe reports end-of-file when either side dies.
    reader.close()
    progress.close()
    os.set_blocking(writer.fileno(), False)
    return RunnerProcess(process, writer, news)
