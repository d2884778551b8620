"""A viewer served from another origin (OHIF) may call DICOMweb when its origin is allowed."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import SECRET_KEY
from worklist.app import create_app
from worklist.config import Settings

VIEWER = "https://viewer.trust-b.example"


def _settings(settings: Settings, origins: str | None) -> Settings:
    values = settings.model_dump()
    values["secret_key"] = SECRET_KEY
    if origins is not None:
        values["cors_origins"] = origins
    return Settings(**values)


def _preflight(client: TestClient, origin: str) -> dict[str, str]:
    response = client.options(
        "/dicomweb/studies",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    return {k.lower(): v for k, v in response.headers.items()}


def test_an_allowed_viewer_origin_passes_the_preflight_and_others_do_not(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    configured = _settings(settings, f"{VIEWER}/, https://other.example")
    assert configured.cors_origins == [VIEWER, "https://other.example"]
    with TestClient(create_app(configured)) as client:
        allowed = _preflight(client, VIEWER)
        refused = _preflight(client, "https://evil.example")
    assert allowed.get("access-control-allow-origin") == VIEWER
    assert "authorization" in allowed.get("access-control-allow-headers", "").lower()
    assert "access-control-allow-origin" not in refused


def test_without_configured_origins_no_cross_origin_access_is_granted(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    with TestClient(create_app(_settings(settings, None))) as client:
        headers = _preflight(client, VIEWER)
    assert "access-control-allow-origin" not in headers
