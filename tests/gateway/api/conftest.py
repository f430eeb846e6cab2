"""A populated platform behind the real HTTP API, for the API suites.

``world`` is module-scoped: a synthetic city ingested into a real enclave, the authority
bootstrapped, two operator tenants (one with a partner developer organisation), two
reviewers of an independent review office, an auditor, a provider, one authorization and
one approved scenario per operator — all created through the API itself. The app runs with
its job runner process unless a test builds its own world without one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.api import create_app
from gateway.control import ControlPlane, bootstrap, control_url
from gateway.runner import Runner
from gateway.signins import DenialLimit
from ledger import Ledger
from sandbox.enclave import Enclave
from sandbox.synth import generate_city
from tests.support import ingest_city

ROLES = (
    "authority",
    "operator",
    "developer",
    "partner_developer",
    "reviewer",
    "reviewer2",
    "auditor",
    "provider",
    "other_operator",
    "other_developer",
)
GOVERNANCE_COLUMNS = {
    "residents": [
        "resident_id",
        "district",
        "education",
        "gender",
        "birth_date",
        "household_size",
        "employed",
    ]
}
DONE = ("refused", "failed", "pending_review", "released", "rejected", "returned", "closed")
SUITE_DENIALS = DenialLimit(per_window=1_000_000)
"""The suites refuse thousands of sign-ins from the test client's one address, and look for
each one in the ledger; their worlds record them all."""


@dataclass
class World:
    """The client, a token per role, and the ids of what the setup created."""

    client: TestClient
    workdir: Path
    ledger: Ledger
    """The platform's ledger, opened beside the app's: for reading where it stands, never for writing."""
    tokens: dict[str, str] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    orgs: dict[str, dict[str, Any]] = field(default_factory=dict)
    authorizations: dict[str, dict[str, Any]] = field(default_factory=dict)
    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def post(self, path: str, body: dict[str, Any], role: str = "authority", status: int = 201) -> Any:
        response = self.client.post(path, json=body, headers=self.headers(role))
        assert response.status_code == status, response.text
        return response.json()

    def get(self, path: str, role: str = "authority", status: int = 200) -> Any:
        response = self.client.get(path, headers=self.headers(role))
        assert response.status_code == status, response.text
        return response.json()

    def submit(
        self, sql: str, role: str = "developer", scenario: str = "governance", status: int = 201, **extra: Any
    ) -> Any:
        body = {"scenario_id": self.scenarios[scenario]["id"], "sql": sql, **extra}
        return self.post("/v1/jobs", body, role, status)

    def wait(self, job_id: str, role: str = "developer", until: tuple[str, ...] = DONE) -> Any:
        """Poll a job until it reaches one of ``until`` (the runner works asynchronously)."""
        deadline = time.monotonic() + 60
        while True:
            job = self.get(f"/v1/jobs/{job_id}", role)
            if job["status"] in until or time.monotonic() > deadline:
                return job
            time.sleep(0.02)


def prepare_enclave(root: Path, rows: int = 2000, level: int = 2) -> Path:
    """A workdir with the synthetic city's residents, enterprises and social insurance ingested
    at classification ``level``."""
    generate_city(rows, 7, root / "city")
    workdir = root / "work"
    with Enclave.open(workdir) as enclave:
        ingest_city(enclave, root / "city", ("residents", "enterprises", "social_insurance"), level=level)
    return workdir


def _bootstrap(workdir: Path) -> str:
    log = Ledger.open(workdir / "ledger")
    control = ControlPlane.open(control_url(workdir), log)
    try:
        return bootstrap(control, organisation="市大数据局", name="王主任", id_reference="RN-AUTH-0001")[1]
    finally:
        control.close()
        log.close()


def populate(world: World) -> None:
    """Create the organisations, users, tokens, authorizations and scenarios through the API."""
    orgs = {
        "operator": ("城市数据运营有限公司", "operator", None),
        "other_operator": ("普惠金融科技有限公司", "operator", None),
        "review": ("出域审核办公室", "review", None),
        "audit": ("审计监督处", "audit", None),
        "provider": ("市统计局", "provider", None),
    }
    for key, (name, kind, parent) in orgs.items():
        world.orgs[key] = world.post(
            "/v1/organisations",
            {"name": name, "kind": kind, "id_reference": f"REF-{key}", "operator_id": parent},
        )
    people = {
        "operator": ("operator", "operator"),
        "developer": ("operator", "developer"),
        "reviewer": ("review", "reviewer"),
        "reviewer2": ("review", "reviewer"),
        "auditor": ("audit", "auditor"),
        "provider": ("provider", "provider"),
        "other_operator": ("other_operator", "operator"),
        "other_developer": ("other_operator", "developer"),
    }
    for key, (org, role) in people.items():
        world.users[key] = world.post(
            "/v1/users",
            {
                "organisation_id": world.orgs[org]["id"],
                "name": f"用户{key}",
                "role": role,
                "id_reference": f"RN-{key}",
            },
        )
        world.tokens[key] = world.post(f"/v1/users/{world.users[key]['id']}/tokens", {"label": "tests"})[
            "token"
        ]
    partner = {"name": "协作开发单位", "kind": "partner", "id_reference": "REF-partner"}
    world.orgs["partner"] = world.post(
        "/v1/organisations", {**partner, "operator_id": world.orgs["operator"]["id"]}, role="operator"
    )
    world.users["partner_developer"] = world.post(
        "/v1/users",
        {
            "organisation_id": world.orgs["partner"]["id"],
            "name": "合伙人",
            "role": "developer",
            "id_reference": "RN-p",
        },
        role="operator",
    )
    world.tokens["partner_developer"] = world.post(
        f"/v1/users/{world.users['partner_developer']['id']}/tokens", {"label": "tests"}, role="operator"
    )["token"]
    for key, operator in (("governance", "operator"), ("other", "other_operator")):
        world.authorizations[key] = world.post(
            "/v1/authorizations",
            {
                "operator_id": world.orgs[operator]["id"],
                "mode": "whole",
                "datasets": ["residents", "enterprises", "social_insurance"],
                "category": "public_welfare",
            },
        )
        applied = world.post(
            "/v1/scenarios",
            {
                "authorization_id": world.authorizations[key]["id"],
                "name": f"scenario {key}",
                "purpose": "population structure by district for public service planning",
                "datasets": GOVERNANCE_COLUMNS,
                "output_forms": ["aggregate", "model"],
                "privacy_unit": "residents.resident_id",
                "requested_epsilon": 5.0,
            },
            role=operator,
        )
        terms = {"epsilon": 5.0, "query_epsilon": 0.5, "max_groups": 1, "allow_dp": True, "min_cell": 10}
        world.scenarios[key] = world.post(
            f"/v1/scenarios/{applied['id']}/approve", {"terms": terms, "reason": "purpose fits"}, status=200
        )


def add_scenario(world: World, key: str, terms: dict[str, Any], **application: Any) -> dict[str, Any]:
    """A scenario the governance operator applies for under its authorization and the authority
    approves with ``terms``; stored as ``world.scenarios[key]``."""
    body = {
        "authorization_id": world.authorizations["governance"]["id"],
        "requested_epsilon": 1.0,
        **application,
    }
    applied = world.post("/v1/scenarios", body, role="operator")
    approval = {"terms": {"epsilon": 1.0, "query_epsilon": 0.5, **terms}, "reason": "fits its purpose"}
    world.scenarios[key] = world.post(f"/v1/scenarios/{applied['id']}/approve", approval, status=200)
    return world.scenarios[key]


def drain(world: World) -> None:
    """Let a job runner, opened here, do everything waiting in the world's workdir."""
    runner = Runner.open(world.workdir)
    try:
        runner.drain()
    finally:
        runner.close()


@contextmanager
def running_world(
    root: Path, *, start_runner: bool = True, rows: int = 2000, level: int = 2
) -> Iterator[World]:
    """A fresh populated platform under ``root``, served by the app (and its runner)."""
    workdir = prepare_enclave(root, rows, level)
    token = _bootstrap(workdir)
    app = create_app(workdir, start_runner=start_runner, denial_limit=SUITE_DENIALS)
    with Ledger.open(workdir / "ledger") as log, TestClient(app) as client:
        world = World(client, workdir, log, tokens={"authority": token})
        populate(world)
        yield world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("api")) as built:
        yield built
