"""Targets are checked again at connection time, on the addresses a name resolves to."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpcore
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from tests.outbox.conftest import (
    add_webhook_site,
    attempts_by_webhook_id,
    enqueue_messages,
    running_dispatcher,
    wait_until,
    webhook_deliveries,
)
from tests.outbox.test_concurrency import run_async
from tests.receiver import WebhookReceiver
from worklist.audit.repository import ActorKind
from worklist.config import Settings
from worklist.models import Delivery, Site
from worklist.outbox.channel import WebhookChannel
from worklist.outbox.dispatcher import Dispatcher
from worklist.outbox.sender import make_client
from worklist.outbox.targets import TargetPolicy, TargetRefused
from worklist.outbox.transport import GuardedBackend, system_resolve
from worklist.sites.service import Actor, set_webhook_url

STRICT = TargetPolicy()
PRIVATE_OK = TargetPolicy(allow_private=True)
REBOUND_HOST = "results.rebind.test"  # not in any DNS: only the injected resolver knows it


class ScriptedDns:
    """A resolver that answers each name from a table (as an attacker's DNS would), and
    remembers what it was asked."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        return self.answers[host]


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def test_the_system_resolver_finds_localhost_and_the_backend_refuses_it(
    webhook_receiver: WebhookReceiver,
) -> None:
    port = port_of(webhook_receiver.url)
    backend = GuardedBackend(STRICT, system_resolve)

    async def refused(host: str) -> str:
        with pytest.raises(TargetRefused) as caught:
            await backend.connect_tcp(host, port, timeout=5)
        return caught.value.detail

    assert "127.0.0.1" in asyncio.run(system_resolve("localhost", port))
    assert "localhost resolves to 127.0.0.1, a loopback address" in asyncio.run(
        refused("localhost")
    )
    # getaddrinfo reads these as 127.0.0.1 too; the connection-time check sees the result.
    assert "resolves to 127.0.0.1" in asyncio.run(refused("2130706433"))
    assert "127.0.0.1 is a loopback address" in asyncio.run(refused("127.0.0.1"))


def test_with_private_targets_allowed_the_backend_connects_to_the_checked_address(
    webhook_receiver: WebhookReceiver,
) -> None:
    port = port_of(webhook_receiver.url)

    async def connect() -> None:
        stream = await GuardedBackend(PRIVATE_OK).connect_tcp("localhost", port, timeout=5)
        await stream.aclose()

    asyncio.run(connect())


def test_one_forbidden_address_among_public_ones_refuses_the_name() -> None:
    dns = ScriptedDns({"mixed.test": ["93.184.216.34", "10.0.0.7"]})
    backend = GuardedBackend(STRICT, dns)

    with pytest.raises(TargetRefused) as refused:
        asyncio.run(backend.connect_tcp("mixed.test", 443, timeout=5))

    assert "mixed.test resolves to 10.0.0.7, a private address" in refused.value.detail


def set_url(settings: Settings, site: Site, url: str, policy: TargetPolicy) -> None:
    """Set the site's URL as the API and CLI do, under ``policy``."""
    actor = Actor(name="test", kind=ActorKind.SYSTEM)

    async def scenario(sessions: async_sessionmaker[AsyncSession]) -> None:
        async with sessions.begin() as session:
            await set_webhook_url(
                session=session, code=site.code, url=url, actor=actor, policy=policy
            )

    run_async(settings, scenario)


def deliver_once(settings: Settings, policy: TargetPolicy, dns: ScriptedDns) -> list[str]:
    """One dispatcher pass with a client whose transport resolves through ``dns``."""

    async def scenario(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
        async with make_client(concurrency=2, policy=policy, resolve=dns) as client:
            dispatcher = Dispatcher(settings, sessions, WebhookChannel(settings, client))
            claimed = await dispatcher.claim(2)
            return [(await dispatcher.deliver(c)).outcome for c in claimed]

    return run_async(settings, scenario)


def test_a_name_accepted_when_set_that_resolves_to_loopback_is_refused_when_sending(
    db: sessionmaker[Session], fast: Settings, webhook_receiver: WebhookReceiver
) -> None:
    site = add_webhook_site(db, "https://results.north.example/hooks")
    rebound = f"http://{REBOUND_HOST}:{port_of(webhook_receiver.url)}/hooks"
    set_url(fast, site, rebound, STRICT)  # a name: nothing to refuse yet
    [webhook_id] = enqueue_messages(db, site, 1)
    dns = ScriptedDns({REBOUND_HOST: ["127.0.0.1"]})

    outcomes = deliver_once(fast, STRICT, dns)

    assert outcomes == ["refused"]
    assert dns.asked == [REBOUND_HOST]
    assert webhook_receiver.requests == []
    [attempt] = attempts_by_webhook_id(db)[webhook_id]
    assert attempt.outcome == "refused"
    assert attempt.error is not None
    assert attempt.error.startswith(
        f"refused by policy: {REBOUND_HOST} resolves to 127.0.0.1, a loopback address"
    )
    assert attempt.retry_at is not None  # tried again by the usual backoff
    row = webhook_deliveries(db)[webhook_id]
    assert (row.status, row.attempts) == ("pending", 1)
    with db() as session:
        delivery = session.scalars(select(Delivery)).one()
        assert delivery.last_error == attempt.error


def test_with_private_targets_allowed_the_checked_address_is_used_and_the_name_kept(
    db: sessionmaker[Session], fast: Settings, webhook_receiver: WebhookReceiver
) -> None:
    port = port_of(webhook_receiver.url)
    site = add_webhook_site(db, f"http://{REBOUND_HOST}:{port}/hooks")
    assert site.webhook_secret is not None
    webhook_receiver.secrets = [site.webhook_secret]
    [webhook_id] = enqueue_messages(db, site, 1)
    dns = ScriptedDns({REBOUND_HOST: ["127.0.0.1"]})

    outcomes = deliver_once(fast, PRIVATE_OK, dns)

    assert outcomes == ["delivered"]
    [request] = webhook_receiver.requests
    assert request.verified
    assert request.webhook_id == webhook_id
    # Connected to the address the resolver gave, with the name still in the Host header.
    assert request.headers["host"] == f"{REBOUND_HOST}:{port}"


def test_a_stored_loopback_url_is_refused_and_retried_by_the_worker_without_sending(
    db: sessionmaker[Session], fast: Settings, webhook_receiver: WebhookReceiver
) -> None:
    strict = fast.model_copy(update={"webhook_allow_private": False})
    # Stored before targets were checked (or by hand): the worker refuses it when sending.
    site = add_webhook_site(db, webhook_receiver.url)
    [webhook_id] = enqueue_messages(db, site, 1)

    with running_dispatcher(strict):
        wait_until(
            lambda: len(attempts_by_webhook_id(db).get(webhook_id, [])) >= 2,
            what="two refused attempts",
        )

    attempts = attempts_by_webhook_id(db)[webhook_id]
    assert {a.outcome for a in attempts} == {"refused"}
    assert all("127.0.0.1 is a loopback address" in (a.error or "") for a in attempts)
    assert webhook_receiver.requests == []
    assert webhook_deliveries(db)[webhook_id].status == "pending"


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` only (no IP address in it) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextmanager
def tls_server(cert_file: Path, key_file: Path) -> Iterator[tuple[int, list[str], list[str]]]:
    """An HTTPS server on loopback answering 204; yields its port, the SNI names and the
    Host headers it saw."""
    names: list[str] = []
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hosts.append(self.headers.get("host", ""))
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    context.sni_callback = lambda sock, name, ctx: names.append(name or "")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], names, hosts
    finally:
        server.shutdown()
        server.server_close()


def test_over_tls_the_checked_address_is_used_with_the_name_for_sni_and_the_certificate(
    tmp_path: Path,
) -> None:
    cert_file, key_file = self_signed(tmp_path, REBOUND_HOST)
    trusted = ssl.create_default_context(cafile=str(cert_file))
    dns = ScriptedDns({REBOUND_HOST: ["127.0.0.1"]})

    async def post(port: int) -> int:
        backend = GuardedBackend(PRIVATE_OK, dns)
        async with httpcore.AsyncConnectionPool(
            ssl_context=trusted, network_backend=backend
        ) as pool:
            response = await pool.request(
                "POST", f"https://{REBOUND_HOST}:{port}/hooks", content=b"{}"
            )
            return response.status

    with tls_server(cert_file, key_file) as (port, names, hosts):
        status = asyncio.run(post(port))

    assert status == 204
    assert dns.asked == [REBOUND_HOST]
    assert names == [REBOUND_HOST]  # SNI: the name, although we connected to 127.0.0.1
    assert hosts == [f"{REBOUND_HOST}:{port}"]
