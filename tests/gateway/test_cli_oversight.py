"""``veilbox quality``, ``incident``, ``operator`` and ``webhook`` embedded on a workdir: what a
user sees, the refusals as one line with their rule, and a scan that records what it found."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from gateway.cli import app
from gateway.workdays import CALENDAR_FILE


def run(workdir: Path, token: str, *args: str) -> Result:
    env = {"VEILBOX_TOKEN": token, "VEILBOX_URL": None, "COLUMNS": "200"}
    return CliRunner().invoke(app, [*args, "--workdir", str(workdir)], env=env)


def ok(workdir: Path, token: str, *args: str) -> Any:
    result = run(workdir, token, *args, "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    workdir = tmp_path_factory.mktemp("cli-oversight") / "work"
    init = CliRunner().invoke(
        app,
        ["init", "--workdir", str(workdir), "--organisation", "市大数据局", "--name", "王主任",
         "--id-reference", "RN-AUTH-0001", "--json"],
    )  # fmt: skip
    assert init.exit_code == 0, (init.output, init.exception)
    (workdir / CALENDAR_FILE).write_text(json.dumps({"holidays": ["2030-10-01"], "workdays": ["2030-09-29"]}))
    return workdir, json.loads(init.stdout)["token"]


def test_the_calendar_and_the_rules_are_shown(platform: tuple[Path, str]) -> None:
    workdir, token = platform
    shown = run(workdir, token, "quality", "calendar")
    assert shown.exit_code == 0 and "2030-10-01" in shown.stdout and "2030-09-29" in shown.stdout
    rules = {r["id"]: r for r in ok(workdir, token, "incident", "rules")}
    assert rules["D-REVOKED-ACCESS"]["threshold"] == 1 and rules["D-SIGN-IN"]["window_seconds"] == 600


def test_refusals_are_one_line_naming_the_rule(platform: tuple[Path, str]) -> None:
    workdir, token = platform
    for args, rule in (
        (("webhook", "add", "--receiver", "ftp://127.0.0.1/x"), "G-INPUT"),
        (("operator", "suspend", "org_missing", "--reason", "x"), "G-TENANT"),
        (("incident", "show", "inc_missing"), "G-TENANT"),
        (
            ("quality", "file", "--dataset", "residents", "--category", "accuracy", "--description", "x"),
            "G-ROLE",
        ),
    ):
        result = run(workdir, token, *args)
        assert result.exit_code == 1 and rule in str(result.exception), (args, result.output)


def test_a_webhook_is_added_with_its_secret_shown_once_and_a_scan_runs(platform: tuple[Path, str]) -> None:
    workdir, token = platform
    added = run(
        workdir, token, "webhook", "add", "--receiver", "http://127.0.0.1:9/soc", "--event", "incident.raised"
    )
    assert added.exit_code == 0, added.output
    secret = added.stdout.split("shown this once (give it to the receiver):")[1].split()[0]
    assert len(secret) == 64
    listed = ok(workdir, token, "webhook", "list")
    assert secret not in json.dumps(listed) and listed[0]["events"] == ["incident.raised"]
    assert ok(workdir, token, "incident", "scan") == {
        "incidents_raised": [],
        "incidents_overdue": [],
        "quality_escalated": [],
    }
    assert run(workdir, token, "incident", "list").exit_code == 0
    removed = ok(workdir, token, "webhook", "remove", listed[0]["id"])
    assert removed["removed_at"] is not None
