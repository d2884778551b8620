"""The webhook target policy: which URLs may be set, and which addresses may be connected to."""

from __future__ import annotations

import ipaddress

import pytest

from worklist.config import Settings
from worklist.errors import InvalidInput
from worklist.outbox.targets import (
    TargetPolicy,
    TargetRefused,
    classify,
    decode_ipv4_spelling,
)

STRICT = TargetPolicy()
PRIVATE_OK = TargetPolicy(allow_private=True)

# url, allowed by default, allowed with WORKLIST_WEBHOOK_ALLOW_PRIVATE
TABLE = [
    ("https://results.north.example/hooks", True, True),
    ("https://RESULTS.north.example:8443/hooks?token=abc", True, True),
    ("http://8.8.8.8/hooks", True, True),
    ("http://[2606:4700::1111]/hooks", True, True),
    ("http://[::ffff:8.8.8.8]/", True, True),
    # loopback
    ("http://127.0.0.1:1/", False, True),
    ("http://127.255.0.9/", False, True),
    ("http://[::1]:1/", False, True),
    ("http://localhost:5432/", False, True),
    ("http://LocalHost./", False, True),
    ("http://api.localhost/", False, True),
    ("http://localhost.localdomain/", False, True),
    ("http://[::ffff:127.0.0.1]/", False, True),
    ("http://[::ffff:7f00:1]/", False, True),
    ("http://[::127.0.0.1]/", False, True),
    ("http://[64:ff9b::7f00:1]/", False, True),
    ("http://[2002:7f00:1::]/", False, True),
    # private, shared, unique local
    ("http://10.0.0.5:8080/", False, True),
    ("http://172.16.3.4/", False, True),
    ("http://192.168.1.1/", False, True),
    ("http://100.64.0.1/", False, True),
    ("http://[fd12:3456::1]/", False, True),
    ("http://[::ffff:10.0.0.1]/", False, True),
    # link-local, including the cloud metadata service
    ("http://169.254.169.254/latest/meta-data/", False, True),
    ("http://[fe80::1]/", False, True),
    # unspecified and multicast: never
    ("http://0.0.0.0:5432/", False, False),
    ("http://[::]/", False, False),
    ("http://0/", False, False),
    ("http://224.0.0.1/", False, False),
    ("http://[ff02::1]/", False, False),
    # reserved
    ("http://240.0.0.1/", False, False),
    ("http://255.255.255.255/", False, False),
    # IPv4 written in decimal, octal or hex, or shortened: refused however it reads
    ("http://2130706433/", False, False),
    ("http://0x7f000001/", False, False),
    ("http://0177.0.0.1/", False, False),
    ("http://0x7f.0.0.1/", False, False),
    ("http://127.1/", False, False),
    ("http://134744072/", False, False),  # 8.8.8.8, but not written so
    ("http://8.8.8.8./", False, False),
    # not a URL the worker may use
    ("http://user:pass@results.north.example/", False, False),
    ("http://token@results.north.example/", False, False),
    ("http://@results.north.example/", False, False),
    ("https://results.north.example/hooks#frag", False, False),
    ("ftp://results.north.example/", False, False),
    ("file:///etc/passwd", False, False),
    ("gopher://results.north.example/", False, False),
    ("results.north.example/hooks", False, False),
    ("http:///hooks", False, False),
    ("http://", False, False),
    ("https://a b.example/", False, False),
    ("https://north.example/\x00", False, False),
    ("http://north.example:0/", False, False),
    ("http://north.example:99999/", False, False),
    ("http://[fe80::1%25eth0]/", False, False),
]


@pytest.mark.parametrize(("url", "strict", "private"), TABLE)
def test_the_policy_table(url: str, strict: bool, private: bool) -> None:
    for policy, allowed in ((STRICT, strict), (PRIVATE_OK, private)):
        if allowed:
            assert policy.check_url(url) == url
        else:
            with pytest.raises(InvalidInput):
                policy.check_url(url)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://127.0.0.1:1/", "127.0.0.1 is a loopback address"),
        ("http://localhost:5432/", "localhost names this machine"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://10.1.2.3/", "10.1.2.3 is a private address"),
        ("http://169.254.169.254/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://0/", "non-standard spelling of 0.0.0.0 (unspecified)"),
        ("http://0x7f000001/", "non-standard spelling of 127.0.0.1 (loopback)"),
        ("http://u:p@north.example/", "credentials are not allowed"),
        ("http://north.example/#x", "fragment"),
        ("ftp://north.example/", "http:// or https://"),
    ],
)
def test_a_refusal_says_why(url: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        STRICT.check_url(url)

    assert fragment in refused.value.detail
    assert refused.value.status_code == 422


def test_an_allowed_network_admits_its_addresses_only() -> None:
    policy = TargetPolicy(allowed_networks=(ipaddress.ip_network("10.20.0.0/16"),))

    assert policy.check_url("http://10.20.3.4:8080/h")
    assert policy.check_url("http://[::ffff:10.20.3.4]/h")
    for url in ("http://10.21.0.1/", "http://127.0.0.1/", "http://localhost/"):
        with pytest.raises(TargetRefused):
            policy.check_url(url)


def test_no_setting_admits_unspecified_or_multicast_addresses() -> None:
    everything = TargetPolicy(
        allow_private=True,
        allowed_networks=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")),
    )

    for address in ("0.0.0.0", "::", "224.0.0.251", "ff02::1"):
        assert not everything.permits(ipaddress.ip_address(address))
    assert everything.permits(ipaddress.ip_address("127.0.0.1"))


def test_settings_configure_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKLIST_WEBHOOK_ALLOW_PRIVATE", raising=False)
    monkeypatch.setenv("WORKLIST_WEBHOOK_ALLOWED_NETWORKS", "10.20.0.0/16, fd00:1::/64")

    default = TargetPolicy.from_settings(Settings())
    private = TargetPolicy.from_settings(Settings(webhook_allow_private=True))

    assert default.allow_private is False
    assert default.allowed_networks == (
        ipaddress.ip_network("10.20.0.0/16"),
        ipaddress.ip_network("fd00:1::/64"),
    )
    assert private.allow_private is True


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.258", "10.1.1.2"),
        ("0", "0.0.0.0"),
        ("08.1.1.1", None),
        ("1.2.3.256", None),
        ("4294967296", None),
    ],
)
def test_numeric_hosts_decode_as_inet_aton_reads_them(spelling: str, address: str | None) -> None:
    decoded = decode_ipv4_spelling(spelling)

    assert (str(decoded) if decoded else None) == address


def test_public_addresses_have_no_class() -> None:
    for address in ("8.8.8.8", "1.1.1.1", "2606:4700::1111"):
        assert classify(ipaddress.ip_address(address)) is None
