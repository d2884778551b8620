"""The in-process gateway fixtures of tests/gateway, for the gateway's events."""

from tests.gateway.conftest import gateway, sites

__all__ = ["gateway", "sites"]
