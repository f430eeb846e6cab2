"""What the API process holds open: the control plane, the ledger, the catalog and the review
gate — never the enclave's keys or datasets — and a way to wake the runner."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from deid.budget import PrivacyBudget
from deid.datakeys import DataKeys
from gateway.control import ControlPlane, control_url
from gateway.runner_process import RunnerProcess
from gateway.signins import DenialLimit, SignInRecorder
from gateway.workdays import WorkCalendar
from gateway.workdir import Layout
from ledger import Ledger
from outbound_review import Gate
from sandbox.catalog import Catalog


class Progress:
    """Lets requests wait for the runner's next step instead of polling.

    Each step the runner reports ends every wait begun before it. A waiter takes a
    ``ticket`` before it reads the job, so a step between the read and the wait is not lost.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()

    def moved(self) -> None:
        """Report a step; safe from any thread."""
        self._loop.call_soon_threadsafe(self._next)

    def _next(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def ticket(self) -> asyncio.Event:
        """What a waiter holds: set by the next step reported."""
        return self._event

    async def after(self, ticket: asyncio.Event, timeout: float) -> None:
        """Return once ``ticket`` is set or ``timeout`` seconds have passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ticket.wait(), timeout)


@dataclass
class Platform:
    """The API's services over one working directory."""

    layout: Layout
    ledger: Ledger
    control: ControlPlane
    catalog: Catalog
    gate: Gate
    budget: PrivacyBudget
    keys: DataKeys
    """The operators' data keys: an exit destroys the operator's, shredding what it left behind."""
    runner: RunnerProcess | None = None
    """The app's job runner; None when jobs are run elsewhere (the CLI embedded, tests)."""
    progress: Progress | None = None
    """The runner's steps, for requests that wait on a job; set while the app serves."""
    calendar: WorkCalendar = field(default_factory=WorkCalendar)
    """The working-day calendar that data-quality due dates are counted in."""
    denial_limit: DenialLimit | None = None
    """How many refused sign-ins of one source are recorded one by one; the default if None."""
    signins: SignInRecorder = field(init=False)
    """Where refused sign-ins are recorded, within ``denial_limit``."""

    def __post_init__(self) -> None:
        self.signins = SignInRecorder(self.ledger, self.control.now, self.denial_limit)

    def wake(self) -> None:
        """Tell the runner there is work (nothing to do when jobs run elsewhere)."""
        if self.runner is not None:
            self.runner.wake()

    def runner_alive(self) -> bool | None:
        """Whether the app's runner process lives; None when jobs are run elsewhere."""
        return None if self.runner is None else self.runner.alive()

    @classmethod
    def open(
        cls, workdir: Path, *, url: str | None = None, denial_limit: DenialLimit | None = None
    ) -> Platform:
        """Open a working directory's services (the ledger and stores are created if missing).

        The working-day calendar is the workdir's ``calendar.json`` (weekends off without
        one); refused sign-ins are recorded within ``denial_limit`` (the default one if None).
        """
        layout = Layout(Path(workdir))
        layout.root.mkdir(parents=True, exist_ok=True)
        calendar = WorkCalendar.of_workdir(layout.root)
        ledger = Ledger.open(layout.ledger)
        try:
            control = ControlPlane.open(url or control_url(layout.root), ledger)
            catalog = Catalog(layout.catalog, ledger)
            keys = DataKeys(layout.data_keys, ledger)
            gate = Gate(layout.review, ledger, keys)
            budget = PrivacyBudget(layout.budget, ledger)
        except BaseException:
            ledger.close()
            raise
        return cls(
            layout,
            ledger,
            control,
            catalog,
            gate,
            budget,
            keys,
            calendar=calendar,
            denial_limit=denial_limit,
        )

    def close(self) -> None:
        self.signins.flush()
        self.budget.close()
        self.gate.close()
        self.keys.close()
        self.catalog.close()
        self.control.close()
        self.ledger.close()
