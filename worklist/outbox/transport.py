"""The dispatcher's HTTP transport: resolve once, check every address, connect to a checked one.

httpcore opens connections through a network backend; ours resolves the host itself
(with an injectable resolver), refuses the connection if any resolved address is not
a permitted target, and connects to the checked address, never to the name, so a
name cannot rebind to a forbidden address between the check and the connect. TLS
still verifies the name (SNI and certificate) and the ``Host`` header still carries
it: both come from the URL, not from the address connected to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence

import httpcore
import httpx

from worklist.outbox.targets import IPAddress, TargetPolicy, TargetRefused

# host, port -> the addresses (text) a connection to them may use, in preference order.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses the system resolver (getaddrinfo) gives for ``host``, duplicates removed."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that only connects to addresses ``policy`` permits."""

    def __init__(
        self,
        policy: TargetPolicy,
        resolve: Resolver = system_resolve,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolve = resolve
        self.inner = inner or httpcore.AnyIOBackend()

    async def addresses(self, host: str, port: int, timeout: float | None) -> list[IPAddress]:
        """Every address ``host`` resolves to, each checked; TargetRefused if any is refused."""
        literal = _literal(host)
        if literal is not None:
            self.policy.check_address(literal)
            return [literal]
        try:
            async with asyncio.timeout(timeout):
                resolved = await self.resolve(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"DNS lookup of {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"DNS lookup of {host} failed") from exc
        found = [_literal(text.partition("%")[0]) for text in resolved]
        addresses = [a for a in found if a is not None]
        if not addresses or len(addresses) != len(found):
            raise httpcore.ConnectError(f"DNS lookup of {host} gave no usable address")
        for address in addresses:
            self.policy.check_address(address, host=host)
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the first checked address of ``host`` that accepts."""
        failure: httpcore.ConnectError | None = None
        for address in await self.addresses(host, port, timeout):
            try:
                return await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None  # addresses() returns at least one
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Never: a Unix socket is not a webhook target."""
        raise TargetRefused("a Unix socket is not a webhook target")

    async def sleep(self, seconds: float) -> None:
        """Sleep as the inner backend does."""
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a ``GuardedBackend``; each request's URL is checked first."""

    def __init__(
        self, *, policy: TargetPolicy, limits: httpx.Limits, resolve: Resolver = system_resolve
    ) -> None:
        super().__init__(trust_env=False, limits=limits)
        self.policy = policy
        # httpx takes no network backend, so the pool it built (unopened) is replaced by one
        # that has ours; request and response handling stay httpx's.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy, resolve),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Refuse a URL the policy refuses on its face, then send over checked connections."""
        self.policy.check_url(str(request.url))
        return await super().handle_async_request(request)
