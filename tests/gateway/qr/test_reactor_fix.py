"""The gateway runs pynetdicom's reactor with the pause-race fix (``reactor_fix``)."""

from __future__ import annotations

from pynetdicom.association import Association

from dicom_gateway import reactor_fix
from tests.gateway.qr.conftest import Network


def test_a_started_gateway_runs_the_fixed_reactor(network: Network) -> None:
    assert Association._run_reactor is reactor_fix._run_reactor
    assert reactor_fix.install_reactor_fix() is True  # idempotent
