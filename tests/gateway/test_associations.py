"""Association acceptance: only our AE title, only registered nodes at their hosts."""

from __future__ import annotations

import os
import subprocess

import pytest

from dicom_gateway.server import Gateway
from tests.gateway.conftest import FAR_AWAY_AE, SITE_A_AE, SITE_B_AE, association_outcome

ECHOSCU = "/usr/bin/echoscu"


def _echoscu(port: int, calling: str, called: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ECHOSCU, "-aet", calling, "-aec", called, "127.0.0.1", str(port)],
        env={**os.environ, "TCP_NODELAY": "1"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("calling_ae", [SITE_A_AE, SITE_B_AE])
def test_registered_nodes_can_echo(gateway: Gateway, calling_ae: str) -> None:
    assert association_outcome(gateway.port, calling_ae=calling_ae) == "established"
    assert _echoscu(gateway.port, calling_ae, "IMAGING_NET").returncode == 0


def test_unknown_calling_ae_is_rejected(gateway: Gateway) -> None:
    assert association_outcome(gateway.port, calling_ae="STRANGER") == "rejected"
    result = _echoscu(gateway.port, "STRANGER", "IMAGING_NET")
    assert result.returncode != 0
    assert "Rejected Permanent" in result.stderr
    assert "Calling AE Title Not Recognized" in result.stderr


def test_wrong_called_ae_is_rejected(gateway: Gateway) -> None:
    assert association_outcome(gateway.port, called_ae="SOMEONE_ELSE") == "rejected"
    result = _echoscu(gateway.port, SITE_A_AE, "SOMEONE_ELSE")
    assert "Called AE Title Not Recognized" in result.stderr


def test_registered_ae_from_an_unregistered_host_is_rejected(gateway: Gateway) -> None:
    # FAR_PACS is registered at 10.9.8.7; we connect from 127.0.0.1.
    assert association_outcome(gateway.port, calling_ae=FAR_AWAY_AE) == "rejected"
    result = _echoscu(gateway.port, FAR_AWAY_AE, "IMAGING_NET")
    assert "Calling AE Title Not Recognized" in result.stderr
