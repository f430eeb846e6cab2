"""The control plane's public surface, its error types and rule ids, and what importing it costs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import gateway.control
from gateway import errors
from gateway.errors import (
    Conflict,
    Forbidden,
    GatewayError,
    InvalidRequest,
    NotFound,
    StoreError,
    Unauthenticated,
)
from ledger import VeilboxError

SURFACE = {
    "MIGRATIONS", "ROLES_BY_KIND", "Authorization", "Category", "ControlPlane", "ExitSummary", "Mode",
    "OrgKind", "Organisation", "Principal", "Role", "Scenario", "ScenarioTerms", "TokenInfo", "User",
    "active_authorization", "apply", "approve", "authenticate", "bootstrap", "check_parameters",
    "control_url", "create_organisation", "create_user", "deactivate_user", "dp_config",
    "get_authorization", "get_organisation", "get_scenario", "get_user", "grant", "issue_token",
    "list_authorizations", "list_organisations", "list_scenarios", "list_tokens", "list_users",
    "principal_of", "query_epsilon", "reject", "revoke", "revoke_token", "runnable", "scenario_policy",
    "schema",
}  # fmt: skip
RULE = re.compile(r'"(G-[A-Z]+)"')


def test_all_is_the_intended_surface() -> None:
    assert set(gateway.control.__all__) == SURFACE
    for name in SURFACE:
        assert hasattr(gateway.control, name)


def test_every_rule_id_raised_is_documented_and_every_documented_one_is_used() -> None:
    sources = [Path(errors.__file__), *Path(gateway.control.__file__).parent.glob("*.py")]
    used = {rule for path in sources for rule in RULE.findall(path.read_text())}
    documented = set(re.findall(r"``(G-[A-Z]+)``", errors.__doc__ or ""))
    assert used == documented and len(used) >= 10


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (Unauthenticated, 401),
        (Forbidden, 403),
        (NotFound, 404),
        (Conflict, 409),
        (InvalidRequest, 422),
        (StoreError, 503),
    ],
)
def test_errors_carry_status_rule_and_message(error: type[GatewayError], status: int) -> None:
    exc = error("G-ROLE", "ask the authority")
    assert isinstance(exc, VeilboxError) and exc.status == status
    assert (str(exc), exc.rule, exc.message) == ("ask the authority", "G-ROLE", "ask the authority")
    assert GatewayError.status == 400


def test_importing_the_control_plane_loads_no_query_or_dp_engine() -> None:
    probe = "import sys, gateway.control; print(','.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    for heavy in ("sqlglot", "opendp", "pyarrow", "duckdb", "presidio_analyzer"):
        assert heavy not in loaded.strip().split(","), f"gateway.control should not import {heavy}"
