"""The end-to-end story ``veilbox demo`` tells on the embedded default, printed step by step.

A fictional city's providers load their data into the enclave (PII found and
pseudonymized), a developer works against mock data and submits queries — some refused
by policy, the rest run in isolated workers into quarantine — and an auditor, holding
only the public key and a checkpoint saved earlier, verifies the whole ledger, proves
one job's entry, and catches tampering.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from ledger import PublicKey, verify_log
from ledger.bundle import consistency_bundle, inclusion_bundle, verify_bundle
from ledger.note import open_checkpoint
from sandbox.city import CITY_COLUMNS, CITY_LEVELS, CITY_PROVIDERS
from sandbox.dp import DpConfig
from sandbox.enclave import Enclave
from sandbox.ingest import IngestRequest, ingest
from sandbox.jobs import JobOutcome, QueryJob, run_query
from sandbox.mock import run_mock
from sandbox.policy import ScenarioPolicy
from sandbox.synth import generate_city

MARKER = ".veilbox-demo"
ORIGIN = "veilbox.demo/city-ledger"
DEVELOPER = "developer:alice@city-data-co"
AUTHORITY = "authority:city-data-bureau"

POPULATION = "SELECT district, education, COUNT(*) AS residents FROM residents GROUP BY district, education"
DP = DpConfig("residents", "resident_id", epsilon=0.5, delta=1e-6, max_rows=12, max_groups=1)
DP_BUDGET = 1.0

SUBMISSIONS = [
    ("population by district and education", POPULATION),
    ("average insured salary by industry", "SELECT e.industry, AVG(s.base_salary) AS avg_salary, "
     "COUNT(DISTINCT s.resident_id) AS people FROM social_insurance s "
     "JOIN enterprises e ON s.employer_uscc = e.uscc GROUP BY e.industry"),
    ("list residents' ID numbers", "SELECT resident_id, district FROM residents"),
    ("the highest salary", "SELECT MAX(base_salary) AS top FROM social_insurance"),
    ("one person's salary through a subquery", "SELECT SUM(base_salary) AS s FROM (SELECT base_salary "
     "FROM social_insurance ORDER BY base_salary DESC LIMIT 1) t"),
    ("read a file on the server", "SELECT COUNT(*) AS n FROM read_csv('/etc/passwd')"),
]  # fmt: skip

DP_SUBMISSIONS = [
    ("population by district and education", POPULATION),
    ("the same query again", POPULATION),
    (
        "average household size by district",
        "SELECT district, AVG(household_size) AS size FROM residents GROUP BY district",
    ),
    ("residents by gender", "SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender"),
]


def run(workdir: Path, rows: int, force: bool) -> None:
    """Synthesize a city, ingest it, run policy-checked jobs, and audit the ledger."""
    console = Console(highlight=False, soft_wrap=True)
    _prepare(workdir, force)
    console.print(
        Panel.fit("Veilbox — raw data never leaves; every use is controlled and recorded", style="bold")
    )
    with Enclave.open(workdir / "platform", origin=ORIGIN) as enclave:
        auditor = _auditor_pins_key(enclave, workdir / "auditor", console)
        _synthesize_and_ingest(enclave, workdir / "city", rows, console)
        (auditor / "checkpoint-after-ingest").write_text(enclave.ledger.checkpoint())
        policy = ScenarioPolicy({name: enclave.catalog.get(name) for name in CITY_COLUMNS})
        _develop_on_mock(policy, console)
        outcomes = _submit(enclave, policy, console)
        _submit_dp(enclave, policy, console)
        _audit(enclave, auditor, outcomes, console)
    _tamper(workdir, auditor, console)


def _auditor_pins_key(enclave: Enclave, auditor: Path, console: Console) -> Path:
    console.rule("The auditor pins the ledger's public key")
    auditor.mkdir()
    vkey = enclave.ledger.public_key().vkey
    (auditor / "ledger.vkey").write_text(vkey + "\n")
    console.print(vkey)
    return auditor


def _synthesize_and_ingest(enclave: Enclave, city: Path, rows: int, console: Console) -> None:
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


def _develop_on_mock(policy: ScenarioPolicy, console: Console) -> None:
    console.rule("3. A developer writes a query against mock data (generated from the catalog only)")
    mock = run_mock(SUBMISSIONS[0][1], policy, rows=2000)
    sample = mock.table.slice(0, 3).to_pylist()
    console.print(f"[{mock.marker}] {mock.table.num_rows} rows, e.g. {sample}")


def _submit(enclave: Enclave, policy: ScenarioPolicy, console: Console) -> list[JobOutcome]:
    console.rule("4. Submissions: checked before any data is touched, run in isolated workers")
    table = Table("query", "outcome", "detail")
    outcomes = []
    for title, sql in SUBMISSIONS:
        outcome = run_query(enclave, QueryJob(sql=sql, actor=DEVELOPER, scenario="governance", policy=policy))
        outcomes.append(outcome)
        if outcome.status == "quarantined" and outcome.result is not None:
            detail = f"{outcome.result.rows} rows, sha256 {outcome.result.sha256[:16]}… (values withheld)"
        else:
            detail = f"{outcome.rule or ''} {outcome.reason}".strip()
        table.add_row(title, outcome.status, detail)
    console.print(table)
    console.print("Quarantined results wait for disclosure checks and human review; the submitter sees none.")
    return outcomes


def _submit_dp(enclave: Enclave, policy: ScenarioPolicy, console: Console) -> None:
    console.rule(
        f"5. Differential privacy: a budget of ε={DP_BUDGET} over residents, ε={DP.epsilon} per query"
    )
    enclave.budget.set_budget("governance", "residents", epsilon=DP_BUDGET, delta=1e-5, actor=AUTHORITY)
    dp_policy = ScenarioPolicy(policy.datasets, allow_dp=True)
    table = Table("query", "outcome", "detail")
    for title, sql in DP_SUBMISSIONS:
        job = QueryJob(sql=sql, actor=DEVELOPER, scenario="governance", policy=dp_policy, dp=DP)
        outcome = run_query(enclave, job)
        left = enclave.budget.remaining("governance", "residents").epsilon
        detail = (
            outcome.reason if outcome.reason else f"{outcome.result.rows if outcome.result else 0} noisy rows"
        )
        table.add_row(title, f"{outcome.status} {outcome.rule or ''}".strip(), f"{detail}; ε left {left:g}")
    console.print(table)
    console.print(
        "Repeats return the earlier noisy answer; once the budget is spent, "
        "queries are refused before they run."
    )


def _audit(enclave: Enclave, auditor: Path, outcomes: list[JobOutcome], console: Console) -> None:
    console.rule("6. The auditor verifies the whole ledger offline")
    key = enclave.ledger.public_key()
    saved = (auditor / "checkpoint-after-ingest").read_text()
    latest = open_checkpoint(enclave.ledger.checkpoint(), key)
    report = verify_log(enclave.ledger.path, public_key=key, trusted_checkpoint=saved)
    console.print(report.summary())
    quarantined = next(o for o in outcomes if o.status == "quarantined")
    assert quarantined.ledger_index is not None
    bundle = inclusion_bundle(enclave.ledger, quarantined.ledger_index, latest)
    (auditor / "job-proof.json").write_text(json.dumps(bundle, indent=2, ensure_ascii=False))
    console.print(f"inclusion ({len(bundle['proof'])} hashes): {verify_bundle(bundle, key)}")
    proof = consistency_bundle(enclave.ledger, open_checkpoint(saved, key), latest)
    console.print(f"consistency ({len(proof['proof'])} hashes): {verify_bundle(proof, key)}")


def _tamper(workdir: Path, auditor: Path, console: Console) -> None:
    console.rule("7. Tampering with the ledger is caught")
    ledger_dir = workdir / "platform" / "ledger"
    key = PublicKey.from_vkey((auditor / "ledger.vkey").read_text())
    saved = (auditor / "checkpoint-after-ingest").read_text()
    table = Table("attack on a copy of the ledger", "verify says")
    for name, attack in _ATTACKS:
        copy = workdir / "tampered"
        shutil.copytree(ledger_dir, copy)
        attack(copy)
        table.add_row(name, verify_log(copy, public_key=key, trusted_checkpoint=saved).summary())
        shutil.rmtree(copy)
    console.print(table)
    console.print(
        f"\nTry it yourself: veilbox ledger verify {ledger_dir} --public-key {auditor / 'ledger.vkey'} "
        f"--checkpoint {auditor / 'checkpoint-after-ingest'}"
    )


def _prepare(workdir: Path, force: bool) -> None:
    if workdir.exists() and any(workdir.iterdir()):
        if not force:
            raise typer.BadParameter(f"{workdir} is not empty; pass --force to replace an earlier demo")
        if not (workdir / MARKER).exists():
            raise typer.BadParameter(f"{workdir} holds something other than a Veilbox demo; not replacing it")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("created by 'veilbox demo'\n")


def _edit_entry(path: Path) -> None:
    log = path / "entries.jsonl"
    data = log.read_bytes()
    log.write_bytes(data.replace(b'"level":3', b'"level":1', 1))


def _truncate(path: Path) -> None:
    log = path / "entries.jsonl"
    data = log.read_bytes()
    log.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 1])


def _swap(path: Path) -> None:
    log = path / "entries.jsonl"
    lines = log.read_bytes().split(b"\n")
    lines[4], lines[5] = lines[5], lines[4]
    log.write_bytes(b"\n".join(lines))


def _forge_signature(path: Path) -> None:
    note = (path / "checkpoint").read_text()
    head, _, encoded = note.rpartition(" ")
    blob = bytearray(base64.b64decode(encoded))
    blob[10] ^= 0x01  # inside the Ed25519 signature, after the 4-byte key ID
    (path / "checkpoint").write_text(f"{head} {base64.b64encode(bytes(blob)).decode()}\n")


_ATTACKS = [
    ("lower a dataset's classification level in its entry", _edit_entry),
    ("swap two entries", _swap),
    ("delete the last entry", _truncate),
    ("forge the checkpoint signature", _forge_signature),
]
