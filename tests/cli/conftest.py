"""CLI helpers: invoke `worklist` in-process with settings taken from the environment."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from worklist import cli
from worklist.config import Settings

Invoke = Callable[..., Result]


@pytest.fixture(autouse=True)
def _keep_pytest_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands reconfigure the root logger onto the runner's short-lived stderr."""
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str | None]:
    """The environment an operator would set for the admin commands."""
    return {
        "WORKLIST_DATABASE_URL": settings.database_url,
        "WORKLIST_REDIS_URL": settings.redis_url,
        "WORKLIST_SECRET_KEY": settings.secret_key,
        "WORKLIST_DATA_DIR": str(settings.data_dir),
        "WORKLIST_PASSWORD_HASH_TIME_COST": str(settings.password_hash_time_cost),
        "WORKLIST_PASSWORD_HASH_MEMORY_KIB": str(settings.password_hash_memory_kib),
        "WORKLIST_PASSWORD_HASH_PARALLELISM": str(settings.password_hash_parallelism),
    }


@pytest.fixture
def invoke(db: sessionmaker[Session], cli_env: dict[str, str | None]) -> Invoke:
    """Run ``worklist <args>`` against the clean test database."""
    runner = CliRunner()

    def run(
        *args: str, input: str | None = None, env: dict[str, str | None] | None = None
    ) -> Result:
        return runner.invoke(cli.app, list(args), input=input, env={**cli_env, **(env or {})})

    return run
