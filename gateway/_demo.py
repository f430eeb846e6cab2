"""The end-to-end story ``veilbox demo`` tells on the embedded default, printed step by step.

Providers load a synthetic city into the enclave (PII found and pseudonymized). From then on
everything goes through the HTTP API, served in-process, with the job runner working in the
same process: the authority enrols the organisations, grants an operator an authorization
and approves its two scenarios; a developer tries queries on mock data and submits them —
some refused by the policy, the rest run into quarantine and are checked; reviewers of an
independent office approve or reject them; approved results are released as signed
artifacts that the developer downloads and verifies; an auditor verifies the whole ledger
offline, proves a release's entry, and sees tampering caught. The tokens of every demo user
are left in ``DIR/credentials.json`` for continuing with the CLI.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import typer
from fastapi.testclient import TestClient
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from deid.psi import answer_request
from gateway._demo_audit import tamper, verify_offline
from gateway.api import create_app
from gateway.control import ControlPlane, bootstrap, control_url
from gateway.runner import Runner
from ledger import PublicKey
from ledger.bundle import verify_bundle
from outbound_review import verify_release
from sandbox.backend import BackendConfig, save_config
from sandbox.city import CITY_COLUMNS, CITY_LEVELS, CITY_PROVIDERS
from sandbox.enclave import Enclave
from sandbox.ingest import IngestRequest, ingest
from sandbox.synth import generate_city

MARKER = ".veilbox-demo"
ORIGIN = "veilbox.demo/city-ledger"

AGE_BAND = (
    "CASE WHEN birth_date < DATE '1966-01-01' THEN '60+' "
    "WHEN birth_date < DATE '2006-01-01' THEN '20-59' ELSE '0-19' END"
)
POPULATION = (
    f"SELECT district, {AGE_BAND} AS age_band, education, COUNT(*) AS residents "  # noqa: S608 (constants)
    "FROM residents GROUP BY 1, 2, 3"
)
SCENARIOS: dict[str, dict[str, Any]] = {
    "governance": {
        "name": "城市治理: 人口结构 (population structure for service planning)",
        "purpose": "population by district, age band and education, to plan schools and elderly care",
        "datasets": {
            "residents": ["resident_id", "district", "birth_date", "education", "gender", "household_size"]
        },
        "output_forms": ["aggregate"],
        "privacy_unit": "residents.resident_id",
        "requested_epsilon": 2.0,
        "terms": {"epsilon": 2.0, "query_epsilon": 0.5, "max_groups": 1, "allow_dp": True, "min_cell": 10},
    },
    "finance": {
        "name": "普惠金融: 小微企业画像 (inclusive finance for small enterprises)",
        "purpose": "wages and capital of enterprises by industry, for credit products for small firms",
        "datasets": {
            "enterprises": ["uscc", "industry", "district", "registered_capital", "employee_count"],
            "social_insurance": ["resident_id", "employer_uscc", "base_salary"],
        },
        "output_forms": ["aggregate", "verification", "psi"],
        "privacy_unit": None,
        "requested_epsilon": 1.0,
        "terms": {"epsilon": 1.0, "query_epsilon": 0.5, "allow_dp": False, "min_cell": 10},
    },
}
SUBMISSIONS: list[tuple[str, str, str, bool]] = [
    ("governance", "population by district, age band and education", POPULATION, True),
    ("governance", "the same query again", POPULATION, True),
    ("governance", "residents by district",
     "SELECT district, COUNT(*) AS residents FROM residents GROUP BY 1", False),
    ("finance", "average insured salary by industry", "SELECT e.industry, AVG(s.base_salary) AS avg_salary, "
     "COUNT(DISTINCT s.resident_id) AS people FROM social_insurance s "
     "JOIN enterprises e ON s.employer_uscc = e.uscc GROUP BY e.industry", False),
    ("finance", "large employers by industry and district", "SELECT industry, district, COUNT(*) AS firms "
     "FROM enterprises WHERE employee_count >= 1000 GROUP BY industry, district", False),
    ("governance", "list residents' ID numbers", "SELECT resident_id, district FROM residents", False),
    ("finance", "the highest salary", "SELECT MAX(base_salary) AS top FROM social_insurance", False),
    ("finance", "one person's salary through a subquery",
     "SELECT SUM(base_salary) AS s FROM (SELECT base_salary "
     "FROM social_insurance ORDER BY base_salary DESC LIMIT 1) t", False),
    ("governance", "read a file on the server", "SELECT COUNT(*) AS n FROM read_csv('/etc/passwd')", False),
]  # fmt: skip
ORGANISATIONS = {
    "operator": ("城市数据运营有限公司 City Data Operations Co.", "operator"),
    "review": ("出域审核办公室 Outbound Review Office", "review"),
    "audit": ("数据审计处 Data Audit Division", "audit"),
}
USERS = {
    "operator": ("operator", "operator"),
    "developer": ("operator", "developer"),
    "reviewer": ("review", "reviewer"),
    "reviewer2": ("review", "reviewer"),
    "auditor": ("audit", "auditor"),
}


@dataclass
class Story:
    """The API client, the demo users' tokens and what the story created."""

    client: TestClient
    runner: Runner
    console: Console
    tokens: dict[str, str] = field(default_factory=dict)
    scenarios: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def call(self, method: str, path: str, role: str, body: dict[str, Any] | None = None) -> Any:
        response = self.client.request(method, path, json=body, headers=self.headers(role))
        if response.status_code >= 400:
            problem = response.json()
            raise RuntimeError(f"{method} {path} as {role}: {problem['rule']}: {problem['detail']}")
        return response.json()


def run(workdir: Path, rows: int, force: bool, backend: str = "duckdb") -> None:
    """Tell the whole story in ``workdir``, its query jobs run by ``backend`` (duckdb or spark)."""
    console = Console(highlight=False, soft_wrap=True)
    _prepare(workdir, force)
    console.print(
        Panel.fit("Veilbox — raw data never leaves; every use is controlled and recorded", style="bold")
    )
    platform, auditor = workdir / "platform", workdir / "auditor"
    if backend != "duckdb":
        # The platform's working directory chooses its engine; every part of it opened later reads it.
        config = BackendConfig(backend)
        save_config(platform, config)
        console.print(
            f"Query jobs run on Apache Spark ({config.spark_master}); datasets reach it as Parquet."
        )
    _ingest(platform, workdir / "city", auditor, rows, console)
    admin = _bootstrap(platform)
    runner = Runner.open(platform)
    try:
        with TestClient(create_app(platform, start_runner=False)) as client:
            story = Story(client, runner, console, tokens={"authority": admin})
            _enrol(story)
            _authorize(story)
            _develop(story)
            matched = _match(story, workdir / "city")
            jobs = _submit(story, [*SUBMISSIONS, _matched_query(matched)])
            _review(story, jobs)
            released = _release(story, jobs, workdir / "downloads")
            _verify(story, workdir / "city")
            _audit(story, auditor, released)
        (workdir / "credentials.json").write_text(
            json.dumps(
                {"users": {k: {"token": v} for k, v in story.tokens.items()}, "scenarios": story.scenarios},
                indent=2,
                ensure_ascii=False,
            )
            + "\n"
        )
    finally:
        runner.close()
    console.rule("12. Tampering with the ledger is caught")
    tamper(workdir, platform / "ledger", auditor, console)
    console.print(
        f"Continue by hand: veilbox --workdir {platform} job list --token <developer token from "
        f"{workdir / 'credentials.json'}>"
    )


def _ingest(platform: Path, city: Path, auditor: Path, rows: int, console: Console) -> None:
    with Enclave.open(platform, origin=ORIGIN) as enclave:
        console.rule("The auditor pins the ledger's public key")
        auditor.mkdir()
        vkey = enclave.ledger.public_key().vkey
        (auditor / "ledger.vkey").write_text(vkey + "\n")
        console.print(vkey)
        console.rule(f"1. A synthetic city of {rows:,} residents")
        counts = generate_city(rows, seed=2026, out=city)
        console.print(", ".join(f"{table} {count:,}" for table, count in counts.items()))
        console.rule("2. Providers ingest: PII detected, identifiers pseudonymized, datasets registered")
        table = Table("dataset", "provider", "level", "rows", "registration", "pseudonymized (join domain)")
        for name, columns in CITY_COLUMNS.items():
            declared = {c.name: c for c in columns}
            request = IngestRequest(
                name, (city / f"{name}.parquet",), CITY_PROVIDERS[name], CITY_LEVELS[name], declared=declared
            )
            report = ingest(enclave, request)
            hidden = ", ".join(f"{col} ({domain})" for col, domain in report.pseudonymized.items())
            d = report.dataset
            table.add_row(d.name, d.provider, str(d.level), f"{d.row_count:,}", d.registration_code, hidden)
        console.print(table)
        console.print("Raw identifiers now exist only in the encrypted identifier vault inside the enclave.")
        (auditor / "checkpoint-after-ingest").write_text(enclave.ledger.checkpoint())


def _bootstrap(platform: Path) -> str:
    with Enclave.open(platform) as enclave:
        control = ControlPlane.open(control_url(platform), enclave.ledger)
        try:
            return bootstrap(
                control, organisation="市大数据管理局 City Data Bureau", name="王局", id_reference="RN-0001"
            )[1]
        finally:
            control.close()


def _enrol(story: Story) -> None:
    story.console.rule("3. The authority enrols the organisations and their people (tokens shown once)")
    orgs = {
        key: story.call(
            "POST",
            "/v1/organisations",
            "authority",
            {"name": name, "kind": kind, "id_reference": f"REF-{key}"},
        )
        for key, (name, kind) in ORGANISATIONS.items()
    }
    table = Table("user", "role", "organisation", "token")
    for key, (org, role) in USERS.items():
        body = {"organisation_id": orgs[org]["id"], "name": key, "role": role, "id_reference": f"RN-{key}"}
        user = story.call("POST", "/v1/users", "authority", body)
        story.tokens[key] = story.call(
            "POST", f"/v1/users/{user['id']}/tokens", "authority", {"label": "demo"}
        )["token"]
        table.add_row(key, role, orgs[org]["name"], story.tokens[key][:10] + "…")
    story.console.print(table)


def _authorize(story: Story) -> None:
    story.console.rule("4. An authorization (授权) and two scenarios (一场景一审核)")
    operator = story.call("GET", "/v1/me", "operator")["tenant"]
    grant = story.call(
        "POST",
        "/v1/authorizations",
        "authority",
        {
            "operator_id": operator,
            "mode": "domain",
            "scope": sorted({CITY_PROVIDERS[n] for s in SCENARIOS.values() for n in s["datasets"]}),
            "datasets": sorted({n for s in SCENARIOS.values() for n in s["datasets"]}),
            "category": "public_welfare",
        },
    )
    story.console.print(
        f"authorization {grant['id']}: mode {grant['mode']}, {', '.join(grant['datasets'])}, "
        f"{grant['category']}, until {grant['ends_at'][:10]}"
    )
    table = Table("scenario", "datasets", "status", "terms")
    for key, spec in SCENARIOS.items():
        body = {k: v for k, v in spec.items() if k != "terms"}
        applied = story.call("POST", "/v1/scenarios", "operator", {**body, "authorization_id": grant["id"]})
        approved = story.call(
            "POST",
            f"/v1/scenarios/{applied['id']}/approve",
            "authority",
            {"terms": spec["terms"], "reason": "purpose is lawful and the columns are limited to it"},
        )
        story.scenarios[key] = approved["id"]
        terms = spec["terms"]
        table.add_row(
            spec["name"],
            ", ".join(spec["datasets"]),
            approved["status"],
            f"min cell {terms['min_cell']}, ε {terms['epsilon']}" + (", DP" if terms["allow_dp"] else ""),
        )
    story.console.print(table)


def _develop(story: Story) -> None:
    story.console.rule("5. A developer tries a query on mock data (generated from the catalog only)")
    body = {"scenario_id": story.scenarios["governance"], "sql": POPULATION, "mock": True, "mock_rows": 2000}
    mock = story.call("POST", "/v1/jobs", "developer", body)
    story.console.print(f"[{mock['marker']}] {len(mock['rows'])} rows, e.g. {mock['rows'][:2]}")


def _match(story: Story, city: Path) -> str:
    story.console.rule("6. PSI: the enclave finds which enterprises are on a bank's customer list")
    path = str(city / "enterprises.parquet")
    known = duckdb.execute("SELECT uscc FROM read_parquet(?) ORDER BY uscc DESC", [path]).fetchall()
    # The bank's list: some firms of the city and some registered elsewhere; it never leaves the bank.
    customers = [r[0] for r in known[: max(20, len(known) // 10)]] + [
        f"91110000MA0{i:05d}X0" for i in range(50)
    ]
    body = {"scenario_id": story.scenarios["finance"], "domain": "enterprise"}
    job = story.call("POST", "/v1/psi", "developer", body)
    story.runner.drain()
    request = story.client.get(f"/v1/psi/{job['id']}/request", headers=story.headers("developer")).content
    reply, size, served = answer_request(customers, request, 5_000_000)
    story.client.post(
        f"/v1/psi/{job['id']}/reply",
        content=reply,
        headers={**story.headers("developer"), "Content-Type": "application/octet-stream"},
    )
    story.runner.drain()
    done = story.call("GET", f"/v1/jobs/{job['id']}", "developer")
    story.console.print(
        f"the bank answered the enclave's blinded request for {size:,} records over its {served:,} customers "
        f"on its own machine; the matched records are now dataset {done['outcome']['dataset']} of the "
        "scenario — how many matched is recorded in the ledger, not told to the bank"
    )
    return str(done["outcome"]["dataset"])


def _matched_query(dataset: str) -> tuple[str, str, str, bool]:
    sql = (
        f"SELECT e.district, COUNT(*) AS firms "  # noqa: S608 (the name is the platform's own)
        f"FROM enterprises e JOIN {dataset} m ON e.uscc = m.uscc GROUP BY e.district"
    )
    return ("finance", "the bank's matched customers by district", sql, False)


def _submit(story: Story, submissions: list[tuple[str, str, str, bool]]) -> list[tuple[str, dict[str, Any]]]:
    story.console.rule("7. Submissions: checked before any data is touched, run in isolated workers")
    submitted = []
    for scenario, title, sql, dp in submissions:
        body = {"scenario_id": story.scenarios[scenario], "sql": sql, "dp": dp}
        submitted.append((title, story.call("POST", "/v1/jobs", "developer", body)))
    story.runner.drain()
    table = Table("query", "status", "detail")
    jobs = []
    for title, queued in submitted:
        job = story.call("GET", f"/v1/jobs/{queued['id']}", "developer")
        jobs.append((title, job))
        detail = f"{job['rule']}: {job['reason']}" if job["rule"] else (job["reason"] or "result withheld")
        table.add_row(title + (" (DP)" if job["spec"].get("dp") else ""), job["status"], detail)
    story.console.print(table)
    story.console.print("Results wait in quarantine with their disclosure checks; the submitter sees none.")
    return jobs


def _review(story: Story, jobs: list[tuple[str, dict[str, Any]]]) -> None:
    story.console.rule("8. Outbound review (出域审核): checks rule by rule, two reviewers for level-3 data")
    table = Table("query", "checks", "decisions", "state")
    for title, job in jobs:
        if job["status"] != "pending_review":
            continue
        item = story.call("GET", f"/v1/reviews/{job['id']}", "reviewer")
        failing = [o for o in item["evidence"]["report"]["outcomes"] if o["outcome"] == "fail"]
        if failing:
            reason = f"{failing[0]['rule']}: {failing[0]['explanation'][:80]}"
            decided = _decide(story, job["id"], "reviewer", "reject", reason)
            table.add_row(
                title, ", ".join(o["rule"] for o in failing), "rejected: " + reason, decided["state"]
            )
            continue
        decided = _decide(story, job["id"], "reviewer", "approve", "every check passed; the purpose fits")
        who = "reviewer"
        if decided["state"] == "pending_review":
            decided = _decide(story, job["id"], "reviewer2", "approve", "second reviewer agrees")
            who += " + reviewer2"
        table.add_row(title, "all pass", f"approved by {who}", decided["state"])
    story.console.print(table)


def _decide(story: Story, job_id: str, role: str, decision: str, reason: str) -> Any:
    return story.call(
        "POST", f"/v1/reviews/{job_id}/decisions", role, {"decision": decision, "reason": reason}
    )


def _release(story: Story, jobs: list[tuple[str, dict[str, Any]]], downloads: Path) -> list[str]:
    story.console.rule("9. Approved results are released as signed artifacts; the developer verifies one")
    story.runner.drain()
    keys = story.call("GET", "/v1/keys", "auditor")
    released = []
    for title, reviewed in jobs:
        job = story.call("GET", f"/v1/jobs/{reviewed['id']}", "developer")
        if job["status"] != "released":
            continue
        released.append(job["id"])
        folder = downloads / job["id"]
        folder.mkdir(parents=True)
        for name in ("manifest.json", "manifest.sig", "result.csv", "result.parquet", "result.json"):
            response = story.client.get(
                f"/v1/jobs/{job['id']}/release/{name}",
                headers={"Authorization": f"Bearer {story.tokens['developer']}"},
            )
            (folder / name).write_bytes(response.content)
        summary = verify_release(folder, PublicKey.from_vkey(keys["release"]))
        story.console.print(f"{title}: {summary}")
    return released


def _verify(story: Story, city: Path) -> None:
    story.console.rule("10. Verification (核验): one yes/no answer about a consenting enterprise")
    # The bank knows its applicants' credit codes; here they come from the city's own files.
    firms = duckdb.execute(
        "SELECT uscc, registered_capital FROM read_parquet(?) ORDER BY uscc LIMIT 2",
        [str(city / "enterprises.parquet")],
    ).fetchall()
    (consenting, capital), (other, _) = firms
    scenario = story.scenarios["finance"]
    consent = {
        "scenario_id": scenario,
        "domain": "enterprise",
        "subject": consenting,
        "scope": ["V-CAPITAL-AT-LEAST"],
        "expires_at": (datetime.now(UTC) + timedelta(days=90)).isoformat(),
        "evidence": "loan application LA-2026-0042, consent form signed by the legal representative",
        "issuer": "bank.branch-042",
    }
    recorded = _answer(story, "/v1/consents", consent)
    story.console.print(f"consent of a loan applicant: {recorded['status']} {recorded['outcome']}")
    threshold = max(1, int(capital // 2))
    table = Table("subject", "question", "status", "answer or rule")
    for subject, who in ((consenting, "the consenting applicant"), (other, "a firm that gave no consent")):
        question = {
            "scenario_id": scenario,
            "template": "V-CAPITAL-AT-LEAST",
            "subject": subject,
            "params": {"threshold": threshold},
        }
        asked = _answer(story, "/v1/verifications", question)
        said = str(asked["outcome"]["answer"]) if asked["status"] == "answered" else asked["rule"]
        table.add_row(who, f"registered capital ≥ {threshold} (10k CNY)?", asked["status"], said)
    story.console.print(table)
    story.console.print("The identifiers were sealed to the enclave on arrival; only pseudonyms are kept.")


def _answer(story: Story, path: str, body: dict[str, Any]) -> Any:
    job = story.call("POST", path, "developer", body)
    story.runner.drain()
    return story.call("GET", f"/v1/jobs/{job['id']}", "developer")


def _audit(story: Story, auditor: Path, released: list[str]) -> None:
    story.console.rule(
        "11. The auditor proves a release's ledger entry and verifies the whole ledger offline"
    )
    key = PublicKey.from_vkey((auditor / "ledger.vkey").read_text())
    if released:
        entries = story.call(
            "GET", f"/v1/ledger/entries?action=result.released&subject={released[0]}", "auditor"
        )
        index = entries["entries"][0]["index"]
        bundle = story.call("GET", f"/v1/ledger/proofs/inclusion/{index}", "auditor")
        (auditor / "release-proof.json").write_text(json.dumps(bundle, indent=2, ensure_ascii=False))
        story.console.print(f"inclusion of the release of {released[0]}: {verify_bundle(bundle, key)}")
    saved = (auditor / "checkpoint-after-ingest").read_text()
    consistency = story.call("POST", "/v1/ledger/proofs/consistency", "auditor", {"old_checkpoint": saved})
    story.console.print(
        f"consistency with the checkpoint saved after ingestion: {verify_bundle(consistency, key)}"
    )
    verify_offline(story.runner.enclave.ledger.path, auditor, story.console)


def _prepare(workdir: Path, force: bool) -> None:
    if workdir.exists() and any(workdir.iterdir()):
        if not force:
            raise typer.BadParameter(f"{workdir} is not empty; pass --force to replace an earlier demo")
        if not (workdir / MARKER).exists():
            raise typer.BadParameter(f"{workdir} holds something other than a Veilbox demo; not replacing it")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("created by 'veilbox demo'\n")
