"""PSI jobs in the runner: the enclave learns which of its records are on an operator's list.

Two turns, each a run of the same job:

1. *request* — the enclave blinds the join domain's identifiers with a fresh key
   (:func:`sandbox.psi.enclave_client_request`); the request goes to
   ``WORKDIR/psi/JOB/request.bin`` for the operator to download, and the client's state
   (its key and the raw identifiers in request order) stays in the enclave, readable by
   its owner only. The job waits in ``awaiting_reply``.
2. *match* — once the operator's reply (its raw setup and response, computed on its own
   machine over its own list) is stored, the enclave reads it
   (:func:`sandbox.psi.enclave_client_match`), stores the matched records as a dataset of
   the scenario, sealed under the operator's data key (:func:`sandbox.derived.store_match`),
   and destroys the state. The job ends
   ``matched`` with the dataset's name; how many matched is in the ledger, not told to the
   operator — aggregate jobs over the dataset are reviewed like any other.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from deid.errors import PsiError
from deid.psi import ClientState, PsiClient
from gateway.control import ControlPlane
from gateway.jobs import JobRecord, advance
from gateway.specs import PSI_DOMAINS
from gateway.workdir import Layout
from sandbox.derived import store_match
from sandbox.enclave import Enclave
from sandbox.psi import ClientSession, PsiLimits, enclave_client_match, enclave_client_request

REQUEST, REPLY = "request.bin", "reply.bin"


@dataclass
class Matching:
    """Where PSI messages and client states live, beside the runner's enclave."""

    layout: Layout
    enclave: Enclave
    control: ControlPlane

    def run(self, job: JobRecord, level: int) -> None:
        """The job's next turn: send the request, or read the reply and store the match."""
        try:
            if (self.layout.psi / job.id / REPLY).exists():
                self._match(job, level)
            else:
                self._request(job)
        except PsiError as exc:
            self._discard(job.id)
            advance(
                self.control, job.id, "refused", expected=("running",), reason=str(exc), rule="PSI-PROTOCOL"
            )

    def _request(self, job: JobRecord) -> None:
        session = enclave_client_request(self.enclave, job.spec["domain"], actor=job.submitter_id)
        state = self._state(job.id)
        state.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_private(state, f"{session.session_id}\n{session.client.state.to_json()}")
        outbox = self.layout.psi / job.id
        outbox.mkdir(parents=True, exist_ok=True)
        (outbox / REQUEST).write_bytes(session.request)
        outcome = {"enclave_items": session.client.size, "session": session.session_id}
        if not advance(self.control, job.id, "awaiting_reply", expected=("running",), outcome=outcome):
            self._discard(job.id)

    def _match(self, job: JobRecord, level: int) -> None:
        session_id, _, text = self._state(job.id).read_text(encoding="utf-8").partition("\n")
        request = (self.layout.psi / job.id / REQUEST).read_bytes()
        client = PsiClient(ClientState.from_json(text), accept="raw", workers=PsiLimits().workers)
        session = ClientSession(session_id, job.spec["domain"], job.submitter_id, request, client)
        match = enclave_client_match(self.enclave, session, (self.layout.psi / job.id / REPLY).read_bytes())
        name = f"psi_{job.id.removeprefix('job_')}"
        store_match(
            self.enclave,
            match,
            name=name,
            column=PSI_DOMAINS[match.domain],
            level=level,
            scenario=job.scenario_id,
            operator=job.operator_id,
            actor=job.submitter_id,
        )
        self._discard(job.id)
        advance(self.control, job.id, "matched", expected=("running",), outcome={"dataset": name})

    def _state(self, job_id: str) -> Path:
        return self.enclave.paths.enclave / "psi" / f"{job_id}.json"

    def _discard(self, job_id: str) -> None:
        """Destroy the key and the messages: a request is answered once, or never."""
        self._state(job_id).unlink(missing_ok=True)
        shutil.rmtree(self.layout.psi / job_id, ignore_errors=True)


def _write_private(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)  # a turn run again starts with a fresh key
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
