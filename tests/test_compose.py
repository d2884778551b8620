"""docker-compose.yml and the Dockerfile agree with the real CLI and settings."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from worklist.cli import app
from worklist.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")
COMPONENT_SERVICES = {"migrate", "api", "gateway", "worker", "hl7"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def console_script() -> str:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["worklist"] == "worklist.cli:app"
    return "worklist"


def interpolate(value: str) -> str:
    """Resolve ${VAR:-default} to its default and ${VAR:?message} to a placeholder."""

    def resolve(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if kind == "?":
            return f"{name.lower()}-{'x' * 40}"
        return rest if kind == "-" else ""

    return INTERPOLATION.sub(resolve, value)


def service_settings(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a container of ``service`` would load from its environment."""
    for key in [k for k in os.environ if k.startswith("WORKLIST_")]:
        monkeypatch.delenv(key)
    for key, value in service["environment"].items():
        monkeypatch.setenv(key, interpolate(str(value)))
    return Settings()


def test_compose_has_the_expected_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"postgres", "redis", *COMPONENT_SERVICES}
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")


@pytest.mark.parametrize("name", sorted(COMPONENT_SERVICES))
def test_every_service_command_is_a_real_worklist_subcommand(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    command = services[name]["command"]
    assert command[0] == console_script()

    result = CliRunner().invoke(app, [*command[1:], "--help"])

    assert result.exit_code == 0, result.output
    assert services[name]["build"] == "."


def test_the_console_script_runs_the_subcommands(services: dict[str, dict[str, Any]]) -> None:
    script = Path(sys.executable).with_name("worklist")
    executable = str(script) if script.exists() else shutil.which("worklist")
    assert executable, "the `worklist` console script is not installed"
    for name in sorted(COMPONENT_SERVICES):
        command = services[name]["command"]
        result = subprocess.run(
            [executable, *command[1:], "--help"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
    bogus = subprocess.run([executable, "no-such-command"], capture_output=True, timeout=60)
    assert bogus.returncode == 2


def test_every_worklist_variable_is_a_setting(compose: dict[str, Any]) -> None:
    used = set(re.findall(r"\bWORKLIST_[A-Z_]+\b", COMPOSE.read_text()))
    fields = {f"WORKLIST_{name.upper()}" for name in Settings.model_fields}

    assert used, "compose configures nothing?"
    assert used <= fields, used - fields


def test_secret_key_is_required_not_defaulted(services: dict[str, dict[str, Any]]) -> None:
    for name in COMPONENT_SERVICES:
        value = services[name]["environment"]["WORKLIST_SECRET_KEY"]
        assert re.fullmatch(r"\$\{WORKLIST_SECRET_KEY:\?[^}]+\}", value), (name, value)


@pytest.mark.parametrize("name", sorted(COMPONENT_SERVICES))
def test_service_environment_is_valid_settings(
    services: dict[str, dict[str, Any]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = service_settings(services[name], monkeypatch)

    assert settings.require_database_url().startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in settings.require_database_url()
    assert settings.require_redis_url().startswith("redis://redis:6379")
    assert len(settings.resolved_secret_key()) >= 32
    assert settings.data_dir == Path("/data")


def published_container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(mapping).rsplit(":", 1)[-1].split("/")[0]) for mapping in service["ports"]}


def test_api_listens_on_all_interfaces_at_the_published_port(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = service_settings(services["api"], monkeypatch)

    assert settings.api_host == "0.0.0.0"
    assert published_container_ports(services["api"]) == {settings.api_port}
    assert str(settings.api_port) in json.dumps(services["api"]["healthcheck"])


def test_gateway_listens_on_all_interfaces_and_stores_on_the_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = services["gateway"]
    settings = service_settings(gateway, monkeypatch)

    assert settings.gateway_host == "0.0.0.0"
    assert published_container_ports(gateway) == {settings.gateway_port}
    mounts = dict(str(volume).split(":")[1::-1] for volume in gateway["volumes"])
    assert mounts[str(settings.data_dir)] in compose["volumes"]
    assert Path(gateway["environment"]["TMPDIR"]).is_relative_to(settings.data_dir)


def test_depends_on_references_exist_and_conditions_can_be_met(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, (name, target)
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[target], target
            if rule["condition"] == "service_completed_successfully":
                assert services[target].get("restart") == "no", target
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "gateway", "worker"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_runs_the_console_script_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    final_stage = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]
    commands = [json.loads(arg) for op, arg in final_stage if op in ("CMD", "ENTRYPOINT")]
    users = [arg for op, arg in final_stage if op == "USER"]

    assert final_stage[0] == ("FROM", "python:3.11-slim")
    assert commands, "no CMD/ENTRYPOINT in the final stage"
    assert commands[-1][0] == console_script()
    assert CliRunner().invoke(app, [*commands[-1][1:], "--help"]).exit_code == 0
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    installs = " ".join(arg for op, arg in instructions if op == "RUN" and "pip" in arg)
    assert "embedded" not in installs
    assert "[dev]" not in installs


def _compose_command() -> list[str]:
    """`docker compose` (v2) when present, else Debian's `docker-compose` (.ci/run installs it)."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    assert standalone is not None, "install docker-compose (bash .ci/run does)"
    return [standalone]


def test_docker_compose_config_accepts_the_file() -> None:
    compose = _compose_command()
    env = {**os.environ, "WORKLIST_SECRET_KEY": "k" * 48}
    ok = subprocess.run(
        [*compose, "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    env.pop("WORKLIST_SECRET_KEY")
    missing = subprocess.run(
        [*compose, "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert missing.returncode != 0
    assert "set WORKLIST_SECRET_KEY" in missing.stderr
