"""Which webhook targets the worker may POST to: public http(s) endpoints only, by default.

A webhook URL is checked twice. When it is set (API, CLI) ``TargetPolicy.check_url``
refuses what is wrong on its face: another scheme, credentials, a fragment, a
literal address that is not public (loopback, private, link-local, unspecified,
multicast, reserved, and IPv4 addresses hidden in IPv6 forms or written in decimal,
octal or hex), and the ``localhost`` names. A name cannot be judged until it is
resolved, and may resolve differently later, so the dispatcher's transport
(``worklist.outbox.transport``) checks every address a name resolves to, at each
connection, with ``check_address``, and connects only to an address it checked.

``WORKLIST_WEBHOOK_ALLOW_PRIVATE`` admits loopback, private and link-local targets
(tests, closed networks); ``WORKLIST_WEBHOOK_ALLOWED_NETWORKS`` admits named
networks only. Neither ever admits unspecified or multicast addresses.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from worklist.config import Settings
from worklist.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
INVALID_URL = "the webhook URL must be an absolute http:// or https:// URL with a host"
HOW_TO_ALLOW = "webhook targets must be public unless the operator allows private ones"
# Names that always mean this machine (RFC 6761, and Debian's /etc/hosts aliases).
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_LOOPBACK_SUFFIX = ".localhost"
# A host of digits, dots and 0x-hex parts: an IPv4 address to inet_aton(), whatever DNS says.
_NUMERIC_HOST = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+))*\.?$", re.I)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598 carrier-grade NAT


class AddressClass(enum.StrEnum):
    """Why an address is not a public webhook target."""

    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link-local"
    UNSPECIFIED = "unspecified"
    MULTICAST = "multicast"
    RESERVED = "reserved"


# What WORKLIST_WEBHOOK_ALLOW_PRIVATE admits.
PRIVATE_CLASSES = frozenset({AddressClass.LOOPBACK, AddressClass.PRIVATE, AddressClass.LINK_LOCAL})
# What no setting admits: no single host answers there.
NEVER_ALLOWED = frozenset({AddressClass.UNSPECIFIED, AddressClass.MULTICAST})


class TargetRefused(InvalidInput):
    """A webhook target the policy refuses (422 when set; a failed attempt when sending)."""


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, compatible, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    packed = address.packed
    if any(address in net for net in _NAT64) or (packed[:12] == bytes(12) and int(address) > 1):
        return ipaddress.IPv4Address(packed[12:])
    return None


def classify(address: IPAddress) -> AddressClass | None:
    """The class that makes ``address`` non-public, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return classify(inner)
        if address.is_site_local:
            return AddressClass.PRIVATE
    checks = (
        (address.is_unspecified, AddressClass.UNSPECIFIED),
        (address.is_loopback, AddressClass.LOOPBACK),
        (address.is_multicast, AddressClass.MULTICAST),
        (address.is_link_local, AddressClass.LINK_LOCAL),
        (address in _SHARED, AddressClass.PRIVATE),
        (address.is_reserved, AddressClass.RESERVED),
        (address.is_private, AddressClass.PRIVATE),
        (not address.is_global, AddressClass.RESERVED),
    )
    return next((kind for hit, kind in checks if hit), None)


def decode_ipv4_spelling(host: str) -> ipaddress.IPv4Address | None:
    """The address ``inet_aton`` reads in ``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``."""
    parts = host.rstrip(".").split(".")
    values: list[int] = []
    for part in parts:
        text = part.lower()
        try:
            if text.startswith("0x"):
                values.append(int(text[2:] or "0", 16))
            elif len(text) > 1 and text.startswith("0"):
                values.append(int(text, 8))
            else:
                values.append(int(text))
        except ValueError:
            return None
    if not 1 <= len(values) <= 4 or any(v > 255 for v in values[:-1]):
        return None
    last_bytes = 5 - len(values)
    if values[-1] >= 256**last_bytes:
        return None
    number = 0
    for value in values[:-1]:
        number = number * 256 + value
    return ipaddress.IPv4Address(number * 256**last_bytes + values[-1])


@dataclass(frozen=True)
class TargetPolicy:
    """The webhook target rules of a deployment (from its settings)."""

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> TargetPolicy:
        """The policy ``settings`` configure."""
        return cls(
            allow_private=settings.webhook_allow_private,
            allowed_networks=tuple(settings.webhook_allowed_networks),
        )

    def permits(self, address: IPAddress) -> bool:
        """True when the worker may connect to ``address``."""
        kind = classify(address)
        if kind is None:
            return True
        if kind in NEVER_ALLOWED:
            return False
        if self.allow_private and kind in PRIVATE_CLASSES:
            return True
        candidates: Iterable[IPAddress] = (address,)
        if (
            isinstance(address, ipaddress.IPv6Address)
            and (inner := embedded_ipv4(address)) is not None
        ):
            candidates = (address, inner)
        return any(a in net for a in candidates for net in self.allowed_networks)

    def check_address(self, address: IPAddress, *, host: str | None = None) -> None:
        """Refuse ``address`` (which ``host`` resolved to, if a name) unless permitted."""
        if self.permits(address):
            return
        kind = classify(address)
        article = "an" if str(kind)[0] in "aeiou" else "a"
        what = f"{article} {kind} address"
        where = f"{host} resolves to {address}, {what}" if host else f"{address} is {what}"
        reason = "no single host answers there" if kind in NEVER_ALLOWED else HOW_TO_ALLOW
        raise TargetRefused(f"{where}: {reason}")

    def check_host(self, host: str) -> None:
        """Refuse a URL's host that is a non-public literal address or a loopback name."""
        bare = host.strip("[]")
        if "%" in bare:
            raise TargetRefused(f"{host}: IPv6 zone identifiers are not allowed in webhook URLs")
        try:
            literal = ipaddress.ip_address(bare)
        except ValueError:
            literal = None
        if literal is not None:
            self.check_address(literal)
            return
        if _NUMERIC_HOST.match(bare):
            decoded = decode_ipv4_spelling(bare)
            meaning = "not an address"
            if decoded is not None:
                kind = classify(decoded)
                meaning = f"a non-standard spelling of {decoded}" + (f" ({kind})" if kind else "")
            raise TargetRefused(
                f"{host} is {meaning}: write IPv4 addresses as four decimal numbers (a.b.c.d)"
            )
        name = bare.lower().rstrip(".")
        if name in LOOPBACK_NAMES or name.endswith(_LOOPBACK_SUFFIX):
            loopback = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))
            if not any(self.permits(a) for a in loopback):
                raise TargetRefused(f"{host} names this machine (loopback): {HOW_TO_ALLOW}")

    def check_url(self, url: str) -> str:
        """``url`` stripped if the worker may POST to it; TargetRefused or InvalidInput if not."""
        url = url.strip()
        if not url or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
            raise InvalidInput(INVALID_URL)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise InvalidInput(INVALID_URL) from exc
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise InvalidInput(INVALID_URL)
        if "@" in parts.netloc:
            raise TargetRefused(
                "credentials are not allowed in a webhook URL (receivers verify our signature)"
            )
        if "#" in url:
            raise TargetRefused("a webhook URL cannot have a fragment (#...)")
        if port == 0:
            raise InvalidInput(INVALID_URL)
        self.check_host(parts.hostname)
        try:
            httpx.URL(url)  # what the dispatcher will send to must parse there too
        except httpx.InvalidURL as exc:
            raise InvalidInput(INVALID_URL) from exc
        return url


# The default: public targets only.
PUBLIC_ONLY = TargetPolicy()
