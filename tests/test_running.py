"""How commands find the embedded services of a running `worklist up`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worklist import running
from worklist.config import ConfigError, Settings

DATABASE = "postgresql+psycopg://postgres@/worklist?host=/tmp/sock"
REDIS = "unix:///tmp/sock/redis.sock?db=0"


def _exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_unset_urls_come_from_the_running_up_of_the_same_data_dir(tmp_path: Path) -> None:
    running.publish(tmp_path, running.RunningServices(os.getpid(), DATABASE, REDIS))
    settings = Settings(data_dir=tmp_path, database_url=None, redis_url=None)

    assert settings.require_database_url() == DATABASE
    assert settings.require_redis_url() == REDIS
    assert oct(running.state_path(tmp_path).stat().st_mode & 0o777) == "0o600"


def test_configured_urls_win_over_the_running_up(tmp_path: Path) -> None:
    running.publish(tmp_path, running.RunningServices(os.getpid(), DATABASE, REDIS))
    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://x/y")

    assert settings.require_database_url() == "postgresql+psycopg://x/y"


def test_without_a_running_up_the_error_says_what_to_do(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=None, redis_url=None)

    with pytest.raises(ConfigError, match="no `worklist up` is running for") as error:
        settings.require_database_url()
    assert "WORKLIST_DATABASE_URL" in str(error.value)
    assert str(tmp_path.resolve()) in str(error.value)


def test_a_file_left_by_an_up_that_died_is_not_trusted(tmp_path: Path) -> None:
    running.publish(tmp_path, running.RunningServices(_exited_pid(), DATABASE, REDIS))
    settings = Settings(data_dir=tmp_path, database_url=None, redis_url=None)

    with pytest.raises(ConfigError, match="is no longer running"):
        settings.require_redis_url()


def test_an_up_with_external_redis_publishes_only_its_embedded_database(tmp_path: Path) -> None:
    running.publish(tmp_path, running.RunningServices(os.getpid(), DATABASE, None))
    settings = Settings(data_dir=tmp_path, database_url=None, redis_url=None)

    assert settings.require_database_url() == DATABASE
    with pytest.raises(ConfigError, match="uses an external Redis"):
        settings.require_redis_url()


def test_withdraw_removes_only_the_file_of_the_same_process(tmp_path: Path) -> None:
    running.publish(tmp_path, running.RunningServices(os.getpid(), DATABASE, REDIS))

    running.withdraw(tmp_path, os.getpid() + 1)
    assert running.state_path(tmp_path).exists()
    running.withdraw(tmp_path, os.getpid())
    assert not running.state_path(tmp_path).exists()
