"""Deleting what an operator's exit leaves inside the enclave.

A revocation closes the operator's scenarios and jobs in the control plane at once, and the
API deletes their quarantined and reviewed results; the enclave's own leftovers — the
datasets derived for a closed scenario (PSI matches) and the PSI keys of closed jobs — are
deleted here, by the runner, the one process that may touch the enclave. A derived
dataset of an operator that exited was crypto-shredded already (sealed under its data key,
which the exit destroyed: see :mod:`sandbox.derived`); the sweep removes its unreadable
file and its catalog entry. The ledger keeps every entry.
"""

from __future__ import annotations

from sqlalchemy import select

from gateway.control import ControlPlane, schema
from sandbox.enclave import Enclave

ENDED_JOBS = ("closed", "failed")


def sweep(enclave: Enclave, control: ControlPlane, actor: str) -> list[str]:
    """Delete derived datasets of closed scenarios and PSI keys of ended jobs; returns the datasets."""
    derived = {d.name: d.extra["scenario"] for d in enclave.catalog.list() if d.extra.get("scenario")}
    states = {p.stem: p for p in (enclave.paths.enclave / "psi").glob("job_*.json")}
    if not derived and not states:
        return []
    scenarios, jobs = schema.scenarios.c, schema.jobs.c
    with control.transaction(write=False) as conn:
        closed = set(
            conn.execute(
                select(scenarios.id).where(
                    scenarios.id.in_(set(derived.values())), scenarios.status == "closed"
                )
            ).scalars()
        )
        ended = set(
            conn.execute(
                select(jobs.id).where(jobs.id.in_(set(states)), jobs.status.in_(ENDED_JOBS))
            ).scalars()
        )
    for job_id in ended:
        states[job_id].unlink(missing_ok=True)
    deleted = sorted(name for name, scenario in derived.items() if scenario in closed)
    for name in deleted:
        enclave.catalog.unregister(name, actor, "its scenario was closed when the operator exited")
        enclave.paths.derived_dataset(name).unlink(missing_ok=True)
        enclave.paths.dataset(name).unlink(missing_ok=True)  # a match stored before matches were sealed
    return deleted
