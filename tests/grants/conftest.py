"""The API fixtures grants tests share."""

from tests.api.conftest import client, sites

__all__ = ["client", "sites"]
