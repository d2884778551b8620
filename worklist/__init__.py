"""Imaging network shared reporting worklist."""

__version__ = "0.1.0"
