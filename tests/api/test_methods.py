"""A 405 lists, in ``Allow``, every method the path accepts, as the OpenAPI document does."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("DELETE", "/api/v1/studies/1.2.3", "/api/v1/studies/{study_uid}"),
        ("PUT", "/api/v1/studies/1.2.3/claim", "/api/v1/studies/{study_uid}/claim"),
        ("DELETE", "/api/v1/studies/1.2.3/report", "/api/v1/studies/{study_uid}/report"),
        ("POST", "/api/v1/sites/RXA/webhook", "/api/v1/sites/{code}/webhook"),
    ],
)
def test_method_not_allowed_lists_every_method_of_the_path(
    client: TestClient, method: str, path: str, template: str
) -> None:
    documented = {m.upper() for m in client.get("/openapi.json").json()["paths"][template]}
    response = client.request(method, path)
    assert response.status_code == 405
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed - {"HEAD"} == documented
    assert len(documented) >= 2
    assert response.json() == {"detail": "Method Not Allowed"}
