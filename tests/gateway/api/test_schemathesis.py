"""Property-based fuzzing of the OpenAPI document with Schemathesis, in process.

Every operation gets requests generated from its schema — valid ones and deliberately
invalid ones — sent through the app by several roles. Whatever arrives: no 5xx, every error
is a problem naming its rule, and a response the document describes matches it. The world is
this module's own (without a job runner), and the ids fuzzing may aim at are sacrificial
objects, so that no request can lock the fuzzing roles out.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from gateway.api import create_app
from tests.gateway.api.conftest import World, running_world
from tests.gateway.api.probing import PROBLEM_FIELDS, PROBLEM_MEDIA

ROLES = ("authority", "operator", "developer", "reviewer", "auditor", "provider", "other_developer")
EXAMPLES = 15
"""Examples per operation, role mix and generation mode: the module stays well under a minute."""
DOCUMENT = create_app(Path(tempfile.gettempdir()), start_runner=False).openapi()
OPERATIONS = sorted((method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item)
CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    # invalid requests need an input to be invalid in
    if mode.is_positive or {"parameters", "requestBody"} & set(DOCUMENT["paths"][path][method.lower()])
]


@dataclass
class Fuzz:
    world: World
    schema: Any
    ids: dict[str, str]
    """Path parameter → an existing object that fuzzing may read, decide or destroy."""


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    with running_world(tmp_path_factory.mktemp("fuzz"), start_runner=False, rows=300) as world:
        operator = world.orgs["operator"]["id"]
        user = world.post(
            "/v1/users",
            {"organisation_id": operator, "name": "替身", "role": "developer", "id_reference": "RN-fuzz"},
        )["id"]
        token = world.post(f"/v1/users/{user}/tokens", {"label": "fuzz"})["id"]
        grant = {"operator_id": operator, "mode": "whole", "datasets": ["residents"], "category": "industry"}
        authorization = world.post("/v1/authorizations", grant)["id"]
        application = {
            "authorization_id": authorization,
            "name": "待审场景",
            "purpose": "left for fuzzing to decide",
            "datasets": {"residents": ["district"]},
            "output_forms": ["aggregate"],
            "requested_epsilon": 1.0,
        }
        scenario = world.post("/v1/scenarios", application, "operator")["id"]
        job = world.submit("SELECT resident_id FROM residents")["id"]
        ids = {
            "organisation_id": operator,
            "user_id": user,
            "token_id": token,
            "authorization_id": authorization,
            "scenario_id": scenario,
            "job_id": job,
            "name": "residents",
            "index": "0",
        }
        yield Fuzz(world, schemathesis.openapi.from_dict(world.client.get("/openapi.json").json()), ids)


def _send(world: World, kwargs: dict[str, Any]) -> Any:
    """Send a case's requests-style arguments through the app's own test client."""
    content = kwargs.get("data")
    if "json" in kwargs:
        content = json.dumps(kwargs["json"]).encode()
    return world.client.request(
        kwargs["method"],
        kwargs["url"],
        params=kwargs.get("params"),
        headers=kwargs["headers"],
        content=content,
    )


def _assert_problem_if_error(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code < 400:
        return
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA), (response.status_code, response.text)
    body = response.json()
    assert set(PROBLEM_FIELDS) <= set(body), body
    assert body["status"] == response.status_code and body["rule"], body
    assert body["type"] == f"urn:veilbox:problem:{body['rule']}", body


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode}" for m, p, mode in CASES])
def test_fuzzed_requests_get_a_documented_answer(
    fuzz: Fuzz, method: str, path: str, mode: GenerationMode
) -> None:
    operation = fuzz.schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode), role=st.sampled_from(ROLES), real=st.booleans())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any, role: str, real: bool) -> None:
        if real and case.path_parameters:
            case.path_parameters = {k: fuzz.ids.get(k, v) for k, v in case.path_parameters.items()}
        headers = fuzz.world.headers(role)
        kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
        response = _send(fuzz.world, kwargs)
        _assert_problem_if_error(response)
        case.validate_response(response, checks=[response_schema_conformance, content_type_conformance])

    run()


def test_every_operation_is_documented_with_a_summary_and_examples() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    for method, path in OPERATIONS:
        operation = DOCUMENT["paths"][path][method.lower()]
        assert operation.get("summary"), (method, path)
        assert {"4XX", "5XX"} <= set(operation["responses"]), (method, path)
        for status in ("4XX", "5XX"):
            assert list(operation["responses"][status]["content"]) == [PROBLEM_MEDIA], (method, path)
        if "application/json" not in operation.get("requestBody", {}).get("content", {}):
            continue  # no body, or a binary one (the PSI reply) that has no JSON example to give
        media = operation["requestBody"]["content"]["application/json"]
        reference = media["schema"].get("$ref", "").rsplit("/", 1)[-1]
        examples = media.get("examples") or media.get("example") or schemas.get(reference, {}).get("examples")
        assert examples, (method, path)


def test_the_fuzzing_world_is_still_intact(fuzz: Fuzz) -> None:
    for role in ROLES:
        assert fuzz.world.client.get("/v1/me", headers=fuzz.world.headers(role)).status_code == 200, role
