"""The OpenAPI document is true: schemathesis, every check, against the live API.

A radiologist and an admin each run every operation (SSE streams excluded) of the
document the live app serves, over a real socket, with a seeded study (images pushed
through the gateway, a signed report, an alert). Generation is derandomised with a
fixed seed and a fixed number of examples, so a run is repeatable and bounded. The
radiologist's run pins path parameters to the seeded study (success paths); the
admin's leaves them to the generator (error paths, negative data, unknown methods).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.specs.openapi.schemas import OpenApiSchema
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import bearer
from tests.dicomweb.conftest import (
    ADMIN,
    DR_A,
    LiveApi,
    Pushed,
    gateway,
    head_ct,
    live_api,
    sites,
    users,
)
from worklist.api.guard import UID_PATTERN
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import StudyStatus
from worklist.models import Study, User

__all__ = ["gateway", "head_ct", "live_api", "sites", "users"]

SSE_PATHS = ["/api/v1/events", "/api/v1/alerts/stream"]
SEED = 20300107
EXAMPLES_PER_OPERATION = 5
ROLES = (DR_A, ADMIN)
LOOPBACK = "127.0.0.1"
# A schema-valid request may still be refused: 422 for a value the schema cannot express
# (an opaque cursor we did not issue, a URL that is not absolute http(s)), 406 for an
# Accept we cannot serve without transcoding. Everything else must be accepted.
ACCEPTED_REFUSALS = ["2xx", "3xx", "401", "403", "404", "406", "409", "422", "429", "5xx"]


def _seed(
    api: LiveApi, db: sessionmaker[Session], study: Pushed, radiologist: User
) -> dict[str, str]:
    """A signed report and an alert on the pushed study; the path values that name them."""
    uid = study.spec.study_uid
    with db() as session, session.begin():  # received in full: no need to wait for the worker
        session.execute(
            update(Study).where(Study.study_uid == uid).values(status=StudyStatus.READY)
        )
    series = study.spec.series[0].series_uid
    sop = next(iter(study.files))
    with httpx.Client(base_url=api.base_url, headers=bearer(api.settings, radiologist)) as http:
        assert http.post(f"/api/v1/studies/{uid}/claim").status_code == 200
        saved = http.put(f"/api/v1/studies/{uid}/report", json={"text": "No acute findings."})
        assert saved.status_code == 200, saved.text
        signed = http.post(f"/api/v1/studies/{uid}/report/finalise", json={"version": 1})
        assert signed.status_code == 200, signed.text
        alert = http.post(
            f"/api/v1/studies/{uid}/alerts", json={"category": "critical", "finding": "Bleed"}
        )
        assert alert.status_code == 201, alert.text
    return {
        "study_uid": uid,
        "study": uid,
        "series": series,
        "sop": sop,
        "alert_id": alert.json()["id"],
        "code": "RXA",
        "frame_list": "1",
        "tag": "7FE00010",
    }


def _config(*, pinned: dict[str, str] | None, coverage: bool) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # Speed is not what this run measures (a loaded CI machine must not fail it).
            "suppress-health-check": ["all"],
            "generation": {
                "max-examples": EXAMPLES_PER_OPERATION,
                "deterministic": True,
                "no-shrink": True,
                "database": "none",
            },
            "checks": {
                "enabled": True,
                "positive_data_acceptance": {"expected-statuses": ACCEPTED_REFUSALS},
            },
            "phases": {"coverage": {"enabled": coverage}, "stateful": {"enabled": False}},
            "parameters": {f"path.{name}": value for name, value in (pinned or {}).items()},
        }
    )


@pytest.fixture(params=ROLES)
def api_schema(
    request: pytest.FixtureRequest,
    live_api: LiveApi,
    head_ct: Pushed,
    users: dict[str, User],
    db: sessionmaker[Session],
) -> OpenApiSchema:
    """The live API's own OpenAPI document, loaded by schemathesis for one role."""
    seeded = _seed(live_api, db, head_ct, users[DR_A])
    radiologist = request.param == DR_A
    config = _config(pinned=seeded if radiologist else None, coverage=not radiologist)
    schema = schemathesis.openapi.from_url(f"{live_api.base_url}/openapi.json", config=config)
    request.node.auth_headers = bearer(live_api.settings, users[request.param])
    return schema


def _loopback_only(case: Case) -> None:
    """Webhook URLs the generator writes point at loopback (nothing is sent; never elsewhere)."""
    body: Any = case.body
    if not (isinstance(body, dict) and isinstance(body.get("url"), str)):
        return
    try:
        parts = urlsplit(body["url"])
        if parts.hostname and parts.hostname != LOOPBACK:
            port = f":{parts.port}" if parts.port else ""
            body["url"] = urlunsplit(parts._replace(netloc=f"{LOOPBACK}{port}"))
    except ValueError:
        return  # not a URL at all: the API refuses it


schema = schemathesis.pytest.from_fixture("api_schema").exclude(path=SSE_PATHS)


@schema.parametrize()
def test_every_operation_answers_as_documented(case: Case, request: pytest.FixtureRequest) -> None:
    _loopback_only(case)
    case.call_and_validate(headers=request.node.auth_headers)


def _operations(settings: Settings) -> list[tuple[str, str, dict[str, Any]]]:
    document = create_app(settings).openapi()
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_every_operation_declares_the_errors_its_plumbing_can_answer(settings: Settings) -> None:
    for path, method, operation in _operations(settings):
        responses = operation["responses"]
        assert "400" in responses, (method, path)
        if operation.get("security"):
            assert "401" in responses, (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        if "requestBody" in operation:
            assert "413" in responses, (method, path)
        for status, response in responses.items():
            if status.startswith("4"):
                assert "application/json" in response["content"], (method, path, status)
        if "422" in responses:
            shapes = responses["422"]["content"]["application/json"]["schema"]["anyOf"]
            assert {s["$ref"].rsplit("/", 1)[1] for s in shapes} == {"HTTPValidationError", "Error"}


def test_dicomweb_operations_declare_their_real_media_types(settings: Settings) -> None:
    dicomweb = [(p, o) for p, _, o in _operations(settings) if p.startswith("/dicomweb")]
    assert dicomweb
    for path, operation in dicomweb:
        media = set(operation["responses"]["200"]["content"])
        retrieves = path.endswith(("}", "/frames/{frame_list}", "/bulkdata/{tag}"))
        renders = path.endswith(("/rendered", "/thumbnail"))
        expected = (
            {"image/jpeg", "image/png"}
            if renders
            else {"multipart/related" if retrieves else "application/dicom+json"}
        )
        assert media == expected, path
        assert "406" in operation["responses"], path
        parameters = operation.get("parameters", [])
        assert all(p["name"].lower() != "accept" or p["in"] == "query" for p in parameters)


def test_uid_path_parameters_declare_the_uid_pattern(settings: Settings) -> None:
    for path, method, operation in _operations(settings):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] in {"study_uid", "study", "sop"}:
                assert parameter["schema"]["pattern"] == UID_PATTERN, (method, path)
