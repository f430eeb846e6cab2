"""Jobs the enclave answers directly, with nothing to review: verifications (核验) and the
consents they rest on.

Both name a subject by its raw identifier, which reached the runner sealed to the
enclave's input key (:mod:`deid.seal`); it is opened here, pseudonymized at once, and
goes no further. A verification's answer is one boolean — the operator's product, covered
by the subject's consent — stored as the job's outcome; a consent is recorded under the
subject's pseudonym in the consent registry. Refusals keep their rules (``V-*`` from
:mod:`sandbox.verification`, ``C-CONSENT`` for a consent the registry will not take,
``G-SEALED`` for a sealed subject that does not open).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from deid.consent import Consent, ConsentError, ConsentRegistry
from deid.seal import SealError, unseal
from gateway import metering
from gateway.control import ControlPlane
from gateway.jobs import JobRecord, advance
from gateway.workdir import Layout
from ledger import canonical_json
from sandbox.enclave import Enclave
from sandbox.errors import VerificationError
from sandbox.policy import ScenarioPolicy
from sandbox.verification import RateLimiter, VerificationRequest, pseudonymize_subject, verify

RATE = (60, timedelta(minutes=1))
"""Verifications per operator per window."""


@dataclass
class Answers:
    """The consent registry and the verification rate limit, beside the runner's enclave."""

    enclave: Enclave
    control: ControlPlane
    consents: ConsentRegistry
    limiter: RateLimiter

    @classmethod
    def open(cls, layout: Layout, enclave: Enclave, control: ControlPlane) -> Answers:
        consents = ConsentRegistry(layout.consents, enclave.ledger)
        return cls(enclave, control, consents, RateLimiter(layout.verification_rate, *RATE))

    def close(self) -> None:
        self.limiter.close()
        self.consents.close()

    def run(self, job: JobRecord, policy: ScenarioPolicy) -> None:
        """Answer a verification or record a consent; the job ends answered, recorded or refused."""
        try:
            sealed = base64.b64decode(job.spec["subject_sealed"], validate=True)
            subject = unseal(self.enclave.input_key(), sealed, job.id.encode())
        except (SealError, binascii.Error, KeyError) as exc:
            self._refuse(job, "G-SEALED", f"the sealed subject does not open: {exc}")
            return
        if job.kind == "verification":
            self._verify(job, subject, policy)
        else:
            self._record(job, subject)

    def _verify(self, job: JobRecord, subject: str, policy: ScenarioPolicy) -> None:
        request = VerificationRequest(
            operator=job.operator_id,
            actor=job.submitter_id,
            template=str(job.spec["template"]),
            subject=subject,
            policy=policy,
            params=dict(job.spec.get("params") or {}),
        )
        outcome = verify(self.enclave, self.consents, request, limiter=self.limiter, now=self.control.now())
        if outcome.status != "answered":
            self._refuse(job, outcome.rule or "V-FAILED", outcome.reason)
            return
        answer = {"answer": outcome.answer, "verification_id": outcome.verification_id}
        meter = metering.current()
        if meter is not None:  # the answer is what leaves the enclave
            meter.released(len(canonical_json(answer)))
        advance(self.control, job.id, "answered", expected=("running",), outcome=answer)

    def _record(self, job: JobRecord, subject: str) -> None:
        spec = job.spec
        try:
            pseudonym = pseudonymize_subject(self.enclave.pseudonymizer, str(spec["domain"]), subject)
        except VerificationError as exc:
            self._refuse(job, "V-SUBJECT", str(exc))
            return
        try:
            consent = Consent(
                consent_id=f"cns_{secrets.token_hex(8)}",
                domain=str(spec["domain"]),
                subject=pseudonym,
                scope=tuple(spec["scope"]),
                grantee=job.operator_id,
                issuer=str(spec["issuer"]),
                issued_at=self.control.now(),
                expires_at=datetime.fromisoformat(str(spec["expires_at"])),
                evidence=str(spec["evidence"]),
            )
            self.consents.record(consent, job.submitter_id)
        except (ConsentError, ValueError) as exc:
            self._refuse(job, "C-CONSENT", str(exc))
            return
        advance(
            self.control,
            job.id,
            "recorded",
            expected=("running",),
            outcome={"consent_id": consent.consent_id},
        )

    def _refuse(self, job: JobRecord, rule: str, reason: str) -> None:
        advance(self.control, job.id, "refused", expected=("running",), reason=reason, rule=rule)
