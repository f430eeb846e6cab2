"""The job runner: the one gateway process that opens the enclave.

The API process checks, queues and reads; it never holds the master key or a dataset. The
runner claims queued jobs, re-checks that their scenario may still run (an authorization
revoked or expired after submission stops a queued job), runs them in the sandbox's
isolated workers, admits each quarantined result to the review gate, and releases the
results reviewers approved as artifacts signed with the platform's release key — which
is derived from the master key and so exists only here.

A job whose authorization is revoked while it runs is closed by the revocation; when its
run finishes the runner finds it closed, deletes the quarantined result, and never admits
it to review.

Every turn the runner gives a job — its run, a PSI turn, its release — is metered
(:mod:`gateway.metering`): datasets read, CPU time, bytes released, ε and δ.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from deid.seal import public_text
from gateway import disclosure
from gateway.answers import Answers
from gateway.control import ControlPlane, control_url, rectification
from gateway.control.authentication import principal_of
from gateway.control.renewals import warn_expiring
from gateway.control.scenarios import (
    Scenario,
    check_parameters,
    dp_config,
    query_epsilon,
    runnable,
)
from gateway.errors import GatewayError
from gateway.jobs import JobRecord, Status, advance, claim, load, policy_of
from gateway.matching import Matching
from gateway.metering import JobMeter, measuring
from gateway.notify import deliver_due
from gateway.oversight import Oversight, oversee
from gateway.specs import record_ladders
from gateway.sweep import sweep
from gateway.workdir import Layout
from ledger.errors import VeilboxError
from outbound_review import Gate, ReviewRefused, SourceDataset, Submission
from sandbox.catalog import Dataset, Tag
from sandbox.enclave import Enclave
from sandbox.errors import CatalogError, SandboxError
from sandbox.jobs import JobOutcome, QueryJob, run_query
from sandbox.limits import Limits
from sandbox.models import ModelDp, ModelJob, run_model
from sandbox.policy import CheckedQuery, ScenarioPolicy, check_query
from sandbox.records import RecordJob, run_records

ACTOR = "platform:runner"

_log = logging.getLogger("veilbox.runner")


@dataclass
class Runner:
    """The enclave, the control plane and the gate, opened together in one process."""

    layout: Layout
    enclave: Enclave
    control: ControlPlane
    gate: Gate
    answers: Answers
    matching: Matching
    _serial: threading.RLock = field(default_factory=threading.RLock)
    """Held by everything but a job's run in the sandbox: steps on several threads admit,
    release, match and sweep one at a time, as a single thread would."""

    @classmethod
    def open(
        cls,
        workdir: Path,
        *,
        url: str | None = None,
        workers: int = 2,
        limits: Limits | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> Runner:
        """Open a workdir's enclave (creating it if needed) and publish the release and input keys.

        ``workers`` and ``limits`` size the enclave's worker pool and each job's limits;
        ``clock`` is the time terms are judged at (expiry); the wall clock by default.
        """
        layout = Layout(Path(workdir))
        enclave = Enclave.open(layout.root, limits=limits, workers=workers)
        control = ControlPlane.open(url or control_url(layout.root), enclave.ledger, clock=clock)
        gate = Gate(
            layout.review, enclave.ledger, enclave.data_keys, enclave.release_key(), enclave.release_key_name
        )
        layout.publish(layout.release_key, gate.public_key.vkey)
        layout.publish(layout.input_key, public_text(enclave.input_key()))
        answers = Answers.open(layout, enclave, control)
        return cls(layout, enclave, control, gate, answers, Matching(layout, enclave, control))

    def close(self) -> None:
        self.answers.close()
        self.gate.close()
        self.control.close()
        self.enclave.close()

    def step(self, more: Callable[[], None] | None = None) -> bool:
        """Run one queued job or release one approved result; False when there was nothing to do.

        ``more`` is called when other jobs wait behind the one claimed, before it runs, so
        another thread can take the next meanwhile.
        """
        job = claim(self.control, more=more)
        if job is not None:
            self.run(job)
            return True
        with self._serial:
            for item in self.gate.queue.items("approved"):
                self.release(item.job_id)
                return True
        return False

    def drain(self) -> int:
        """Do everything waiting, then sweep and oversee; returns how many steps were taken."""
        steps = 0
        while self.step():
            steps += 1
        self.sweep()
        self.oversee()
        return steps

    def oversee(self) -> Oversight:
        """Run the oversight sweep (detection, deadlines, escalations), then send the webhooks due."""
        done = oversee(self.control, self.gate)
        deliver_due(self.control)
        return done

    def sweep(self) -> list[str]:
        """Delete what ended scenarios and jobs left in the enclave (see :mod:`gateway.sweep`),
        record the expiry warnings now due (see :mod:`gateway.control.renewals`) and publish
        last month's disclosure if it is not out yet (see :mod:`gateway.disclosure`) and flag
        rectifications past their deadline (see :mod:`gateway.control.rectification`)."""
        with self._serial:
            warn_expiring(self.control, ACTOR)
            disclosure.publish_due(self.control, self.layout, ACTOR)
            rectification.flag_overdue(self.control, ACTOR)
            return sweep(self.enclave, self.control, ACTOR)

    def run(self, job: JobRecord) -> None:
        """Run one claimed job to its outcome, metered; nothing it raises escapes the runner."""
        with self._measuring(job.id) as meter:
            try:
                self._run(job, meter)
            except GatewayError as exc:
                if exc.rule == "G-SUSPENDED":  # suspended after the claim: the job waits for reinstatement
                    advance(self.control, job.id, "queued", expected=("running",))
                    return
                # the scenario or its authorization no longer allows it
                advance(self.control, job.id, "closed", expected=("running",), reason=str(exc), rule=exc.rule)
            except Exception as exc:  # one job must never stop the runner: it fails, logged
                _log.exception("job %s failed", job.id)
                reason = (
                    str(exc)
                    if isinstance(exc, VeilboxError)
                    else f"internal error ({type(exc).__name__}); logged"
                )
                self.enclave.ledger.append(ACTOR, "job.failed", job.id, {"reason": reason})
                if advance(self.control, job.id, "failed", expected=("running",), reason=reason, rule=None):
                    self._discard(job.id)

    def _run(self, job: JobRecord, meter: JobMeter) -> None:
        scenario = runnable(self.control, principal_of(self.control, job.submitter_id), job.scenario_id)
        policy = policy_of(scenario, self.enclave.catalog)
        meter.describe(policy.datasets)
        if job.kind in ("verification", "consent"):
            with self._serial:
                self.answers.run(job, policy)
            return
        if job.kind == "psi":
            domain = _domain_datasets(policy, job.spec["domain"])
            meter.reads(d.name for d in domain)
            with self._serial:
                self.matching.run(job, max(d.level for d in domain))
            return
        outcome = self._execute(job, scenario, policy)
        with self._serial:
            self._admit(job, scenario, policy, outcome)

    def _admit(self, job: JobRecord, scenario: Scenario, policy: ScenarioPolicy, outcome: JobOutcome) -> None:
        """Send a job's outcome on: refused or failed, or admitted to review."""
        if outcome.status != "quarantined" or outcome.result is None:
            status: Status = "refused" if outcome.status == "refused" else "failed"
            advance(
                self.control, job.id, status, expected=("running",), reason=outcome.reason, rule=outcome.rule
            )
            return
        try:
            table, meta = self.enclave.quarantine.load(outcome.result.job_id)
        except SandboxError as exc:
            # A revocation deletes the results of the jobs it closes, possibly this one's.
            if not advance(self.control, job.id, "failed", expected=("running",), reason=str(exc), rule=None):
                self._discard(job.id)
            return
        if load(self.control, job.id).status != "running":
            self._discard(job.id)  # closed while it ran: the result is never reviewed
            return
        read = meta.get("tables") or sorted(policy.datasets)
        item = self.gate.admit(self._submission(job, scenario, policy, read, outcome.checked), table, meta)
        if not advance(
            self.control,
            job.id,
            "pending_review",
            expected=("running",),
            reason=outcome.reason or None,
            result_sha256=item.result_sha256,
        ):
            self._discard(job.id)

    def release(self, job_id: str) -> None:
        """Release an approved result, its bytes metered; a release the differencing control now
        refuses is returned."""
        target = self.layout.releases / job_id
        decisions = self.gate.queue.decisions(job_id)
        actor = decisions[-1]["reviewer"] if decisions else ACTOR
        with self._measuring(job_id) as meter:
            try:
                released = self.gate.release(job_id, actor, target)
            except ReviewRefused as exc:
                self.gate.queue.decide(job_id, ACTOR, "platform", "return", str(exc))
                advance(
                    self.control, job_id, "returned", expected=("approved",), reason=str(exc), rule=exc.rule
                )
                return
            meter.released(sum(path.stat().st_size for path in released.folder.iterdir() if path.is_file()))
            advance(
                self.control,
                job_id,
                "released",
                expected=("approved",),
                reason=f"released as artifact {released.artifact_sha256}",
            )

    def _measuring(self, job_id: str) -> AbstractContextManager[JobMeter]:
        """Meter one turn of a job: what the enclave spends on it is recorded with its outcome."""
        return measuring(
            self.control, job_id, actor=ACTOR, budget=self.enclave.budget, lookup=self._catalogued
        )

    def _catalogued(self, name: str) -> Dataset | None:
        try:
            return self.enclave.catalog.get(name)
        except CatalogError:
            return None

    def _execute(self, job: JobRecord, scenario: Scenario, policy: ScenarioPolicy) -> JobOutcome:
        spec = job.spec
        if job.kind == "record":
            k = check_parameters(scenario).k
            if k is None:
                raise GatewayError("G-SCENARIO", f"scenario {scenario.id} no longer sets a k to reach")
            record = RecordJob(
                dataset=spec["dataset"],
                columns=tuple(spec["columns"]),
                k=k,
                actor=job.submitter_id,
                scenario=scenario.id,
                policy=policy,
                ladders=record_ladders(spec["ladders"]),
                max_suppression=float(spec["max_suppression"]),
                job_id=job.id,
                owner=job.operator_id,
            )
            return run_records(self.enclave, record)
        if job.kind == "model":
            config = dp_config(scenario)
            if config is None:
                raise GatewayError("G-SCENARIO", f"scenario {scenario.id} has no privacy unit for models")
            return run_model(
                self.enclave,
                ModelJob(
                    features=spec["features"],
                    model=spec["model"],
                    dp=ModelDp(
                        config.unit_dataset, config.unit_column, float(spec["epsilon"]), spec["max_rows"]
                    ),
                    actor=job.submitter_id,
                    scenario=scenario.id,
                    policy=policy,
                    label=spec.get("label"),
                    hyperparameters=spec.get("hyperparameters") or {},
                    job_id=job.id,
                    owner=job.operator_id,
                ),
            )
        dp = dp_config(scenario) if spec.get("dp") else None
        if spec.get("dp") and dp is None:
            raise GatewayError("G-SCENARIO", f"scenario {scenario.id} no longer allows differential privacy")
        return run_query(
            self.enclave,
            QueryJob(
                sql=spec["sql"],
                actor=job.submitter_id,
                scenario=scenario.id,
                policy=policy,
                job_id=job.id,
                dp=dp,
                owner=job.operator_id,
            ),
        )

    def _submission(
        self,
        job: JobRecord,
        scenario: Scenario,
        policy: ScenarioPolicy,
        tables: list[str],
        checked: CheckedQuery | None,
    ) -> Submission:
        """What the gate needs about a result; its sources are the datasets the job read."""
        sources = tuple(
            SourceDataset(d.name, d.level, d.content_hash, d.row_count)
            for d in (policy.datasets[name] for name in sorted(tables))
        )
        return Submission(
            job_id=job.id,
            submitter=job.submitter_id,
            operator=job.operator_id,
            scenario=scenario.id,
            purpose=scenario.purpose,
            sources=sources,
            parameters=check_parameters(scenario),
            expected_epsilon=query_epsilon(scenario),
            expected_bounds=_declared_bounds(job, policy, checked),
        )

    def _discard(self, job_id: str) -> None:
        """Drop the result of a job closed while it ran, wherever it got to."""
        reason = "the job was closed while it ran: its authorization or scenario ended"
        with self._serial:
            self.gate.queue.withdraw(job_id, ACTOR, reason)
            self.layout.remove_results([job_id])
            self.enclave.ledger.append(ACTOR, "job.discarded", job_id, {"reason": reason})


def _declared_bounds(
    job: JobRecord, policy: ScenarioPolicy, checked: CheckedQuery | None
) -> dict[str, list[float]]:
    """The catalog's bounds for every sum or mean the job outputs, by output name: a DP
    guarantee must declare exactly these, whatever the DP rewrite computed. They come from
    the policy check's reading of the SQL (``checked``, or a fresh check), never the rewrite."""
    if job.kind != "sql":
        return {}
    expected: dict[str, list[float]] = {}
    for output in (checked or check_query(job.spec["sql"], policy)).outputs:
        if output.function in ("sum", "avg") and len(output.sources) == 1:
            ((table, column),) = output.sources
            declared = policy.datasets[table].column(column)
            if declared.lower is not None and declared.upper is not None:
                expected[output.name] = [declared.lower, declared.upper]
    return expected


def _domain_datasets(policy: ScenarioPolicy, domain: str) -> list[Dataset]:
    """The scenario's datasets that identify the PSI's domain (all of them if none does): what
    the match reads from the identifier vault, and as sensitive as a match of them is."""
    identifying = [
        d
        for d in policy.datasets.values()
        if any(c.tag is Tag.IDENTIFIER and c.join_domain == domain for c in d.columns)
    ]
    return identifying or list(policy.datasets.values())
