"""`worklist up`: embedded services, three components, demo data, and a clean stop."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from typer.testing import CliRunner

from tests.conftest import COMMON_SETTINGS
from tests.ports import reserve_port
from worklist.cli import app
from worklist.demo import DEMO_PASSWORD

START_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0


@dataclass
class Stack:
    """A running `worklist up` subprocess and where it listens."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    api: str
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text() + self.stderr.read_text()

    def wait_ready(self) -> None:
        """Until /readyz answers 200 and the banner is printed (demo data sent by then)."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"`worklist up` exited early:\n{self.output()}"
            if "press Ctrl-C to stop" in self.stdout.read_text() and self._ready():
                return
            time.sleep(0.2)
        pytest.fail(f"`worklist up` not ready in {START_TIMEOUT}s:\n{self.output()}")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.api}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def processes(self) -> list[psutil.Process]:
        """`up`'s children (components, Redis) and the embedded postmaster."""
        found = psutil.Process(self.process.pid).children(recursive=True)
        postmaster_pid = int((self.data_dir / "pg" / "postmaster.pid").read_text().split()[0])
        found.append(psutil.Process(postmaster_pid))
        return found


StartUp = Callable[..., Stack]


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data dir outside pytest's 0700 base: as root, embedded PostgreSQL runs as another
    user that must traverse its parents, and a concurrent pytest run re-restricts that base."""
    parent = Path(tempfile.mkdtemp(prefix="worklist-up-test-"))
    parent.chmod(0o755)
    yield parent / "var"
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def start_up(tmp_path: Path, data_dir: Path) -> Iterator[StartUp]:
    """Start `worklist up [args]` with embedded PostgreSQL/Redis under a temporary data dir."""
    started: list[Stack] = []

    def start(*args: str) -> Stack:
        api_port, gateway_port, hl7_port = reserve_port(), reserve_port(), reserve_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLIST_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(
            WORKLIST_DATA_DIR=str(data_dir),
            WORKLIST_API_PORT=str(api_port),
            WORKLIST_GATEWAY_PORT=str(gateway_port),
            WORKLIST_HL7_PORT=str(hl7_port),
            WORKLIST_STUDY_STABLE_SECONDS="1",
            WORKLIST_WORKER_INTERVAL_SECONDS="0.2",
            # The demo accounts and logins at the tests' minimum Argon2id cost.
            **{f"WORKLIST_{name.upper()}": str(value) for name, value in COMMON_SETTINGS.items()},
        )
        stdout, stderr = tmp_path / f"up{len(started)}.out", tmp_path / f"up{len(started)}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "worklist", "up", *args], env=env, stdout=out, stderr=err
            )
        stack = Stack(process, data_dir, f"http://127.0.0.1:{api_port}", stdout, stderr)
        started.append(stack)
        return stack

    yield start
    for stack in started:
        if stack.process.poll() is None:
            stack.process.send_signal(signal.SIGINT)
            try:
                stack.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                stack.process.kill()


def admin_command(
    data_dir: Path, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`worklist ARGS` as an operator would type it: only WORKLIST_DATA_DIR set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLIST_")}
    env["WORKLIST_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "worklist", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def login(api: str, username: str, password: str = DEMO_PASSWORD) -> dict[str, str]:
    response = httpx.post(
        f"{api}/api/v1/auth/token",
        data={"username": username, "password": password},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def ready_worklist(api: str, headers: dict[str, str]) -> list[dict[str, object]]:
    """The default worklist once the worker has promoted the demo studies."""
    deadline = time.monotonic() + 30
    items: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        response = httpx.get(f"{api}/api/v1/worklist", headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        if len(items) >= 4:
            break
        time.sleep(0.3)
    return items


def test_up_demo_serves_a_worklist_and_stops_everything_on_ctrl_c(start_up: StartUp) -> None:
    stack = start_up("--demo")
    stack.wait_ready()
    processes = stack.processes()
    commands = [" ".join(p.cmdline()) for p in processes]
    for component in ("worklist gateway", "worklist api", "worklist worker", "worklist hl7"):
        assert any(component in c for c in commands), commands
    assert any("redis-server" in c for c in commands), commands
    assert any("postgres" in c and str(stack.data_dir / "pg") in c for c in commands), commands
    banner = stack.stdout.read_text()
    assert stack.api in banner
    assert "AE title IMAGING_NET" in banner
    assert str(stack.data_dir) in banner

    items = ready_worklist(stack.api, login(stack.api, "dr.patel"))

    assert items, "the demo radiologist sees an empty worklist"
    assert {item["site"]["code"] for item in items} <= {"RXA", "RXB"}  # type: ignore[index]
    assert {item["status"] for item in items} <= {"ready", "in_progress"}
    names = {item["patient"]["name"] for item in items}  # type: ignore[index]
    assert "MÜLLER^JÜRGEN" in names
    assert "stat" in {item["priority"] for item in items}
    assert login(stack.api, "dr.jones")  # every demo user can log in with the printed password

    # Admin commands with only the data dir find the embedded services by themselves.
    listed = admin_command(stack.data_dir, "site", "list")
    assert listed.returncode == 0, listed.stderr
    assert "RXA" in listed.stdout
    added = admin_command(
        stack.data_dir, "user", "add", "dr.new", "--role", "radiologist", "--site", "RXA",
        "--password-stdin", input="a-long-enough-password",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert login(stack.api, "dr.new", "a-long-enough-password")
    second = admin_command(stack.data_dir, "up")
    assert second.returncode == 1
    assert "already running" in second.stderr

    stack.process.send_signal(signal.SIGINT)
    code = stack.process.wait(STOP_TIMEOUT)

    assert code == 0, stack.output()
    stopped = admin_command(stack.data_dir, "site", "list")
    assert stopped.returncode == 1
    assert stopped.stderr.startswith("error: WORKLIST_DATABASE_URL is not set and no `worklist up`")
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p.pid for p in processes if not _gone(p)] == []
    assert not (stack.data_dir / "pg" / "postmaster.pid").exists()


def test_up_stops_everything_and_fails_when_a_component_dies(start_up: StartUp) -> None:
    stack = start_up()
    stack.wait_ready()
    processes = stack.processes()
    worker = next(p for p in processes if "worklist worker" in " ".join(p.cmdline()))

    worker.kill()
    code = stack.process.wait(STOP_TIMEOUT)

    assert code == 1, stack.output()
    assert "worker" in stack.stderr.read_text()
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p.pid for p in processes if not _gone(p)] == []


def test_up_refuses_a_port_in_use_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            app,
            ["up"],
            env={
                "WORKLIST_DATA_DIR": str(tmp_path / "var"),
                "WORKLIST_DATABASE_URL": None,
                "WORKLIST_REDIS_URL": None,
                "WORKLIST_SECRET_KEY": None,
                "WORKLIST_API_PORT": str(port),
                "WORKLIST_GATEWAY_PORT": str(reserve_port()),
                "WORKLIST_HL7_PORT": str(reserve_port()),
            },
        )

    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: cannot listen on 127.0.0.1:")
    assert "WORKLIST_API_PORT" in result.stderr
    assert not (tmp_path / "var" / "pg").exists()
