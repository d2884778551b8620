"""Fixtures of the API tests this package uses too."""

from tests.api.conftest import client, sites

__all__ = ["client", "sites"]
