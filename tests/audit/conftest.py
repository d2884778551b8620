"""The API test fixtures (a live app, two trusts), for the audit endpoint."""

from tests.api.conftest import client, sites

__all__ = ["client", "sites"]
