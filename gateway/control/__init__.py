"""The gateway's control plane: organisations, users, tokens, authorizations and scenarios in
one database, with service functions that check roles and tenants and record every change
in the ledger. The HTTP API and the job runner call these; nothing here speaks HTTP.

>>> import tempfile
>>> from pathlib import Path
>>> from ledger import Ledger
>>> workdir = Path(tempfile.mkdtemp())
>>> log = Ledger.open(workdir / "ledger", origin="example.org/ledger")
>>> cp = ControlPlane.open(control_url(workdir), log)
>>> admin, secret = bootstrap(cp, organisation="City Data Bureau", name="Wang", id_reference="RN-0001")
>>> authenticate(cp, secret) == admin
True
>>> [entry.action for entry in log.entries()]
['org.created', 'user.created', 'token.issued']
>>> cp.close()
>>> log.close()
"""

from gateway.control import schema
from gateway.control.authentication import authenticate, principal_of
from gateway.control.authorizations import (
    Authorization,
    Category,
    ExitSummary,
    Mode,
    active_authorization,
    get_authorization,
    grant,
    list_authorizations,
    revoke,
)
from gateway.control.db import MIGRATIONS, ControlPlane, control_url
from gateway.control.identity import (
    ROLES_BY_KIND,
    Organisation,
    OrgKind,
    Principal,
    Role,
    TokenInfo,
    User,
    bootstrap,
    create_organisation,
    create_user,
    deactivate_user,
    get_organisation,
    get_user,
    issue_token,
    list_organisations,
    list_tokens,
    list_users,
    revoke_token,
)
from gateway.control.scenarios import (
    Scenario,
    ScenarioTerms,
    apply,
    approve,
    check_parameters,
    dp_config,
    get_scenario,
    list_scenarios,
    query_epsilon,
    reject,
    runnable,
    scenario_policy,
)

__all__ = [
    "MIGRATIONS",
    "ROLES_BY_KIND",
    "Authorization",
    "Category",
    "ControlPlane",
    "ExitSummary",
    "Mode",
    "OrgKind",
    "Organisation",
    "Principal",
    "Role",
    "Scenario",
    "ScenarioTerms",
    "TokenInfo",
    "User",
    "active_authorization",
    "apply",
    "approve",
    "authenticate",
    "bootstrap",
    "check_parameters",
    "control_url",
    "create_organisation",
    "create_user",
    "deactivate_user",
    "dp_config",
    "get_authorization",
    "get_organisation",
    "get_scenario",
    "get_user",
    "grant",
    "issue_token",
    "list_authorizations",
    "list_organisations",
    "list_scenarios",
    "list_tokens",
    "list_users",
    "principal_of",
    "query_epsilon",
    "reject",
    "revoke",
    "revoke_token",
    "runnable",
    "scenario_policy",
    "schema",
]
