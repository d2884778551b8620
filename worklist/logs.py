"""One structured line per event: ``ts level logger event key=value ...``.

Database errors are logged without their message: it can quote the values of the
statement or the row that failed (names, NHS numbers, search terms). Connection problems
(operational errors) keep theirs; they name hosts, not patients.
"""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType
from typing import Any

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_DATABASE_MODULES = ("sqlalchemy", "psycopg", "psycopg2", "asyncpg")
_SAFE_DATABASE_ERRORS = {"OperationalError", "InterfaceError"}
HIDDEN_MESSAGE = "[message hidden: database errors can quote patient data]"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def hides_message(exc: BaseException) -> bool:
    """True for database errors whose message may carry statement or row values."""
    kind = type(exc)
    if kind.__module__.split(".", 1)[0] not in _DATABASE_MODULES:
        return False
    return not any(cls.__name__ in _SAFE_DATABASE_ERRORS for cls in kind.__mro__)


def _exception_line(exc: BaseException) -> str:
    if hides_message(exc):
        return f"{type(exc).__module__}.{type(exc).__qualname__}: {HIDDEN_MESSAGE}"
    return "".join(traceback.format_exception_only(type(exc), exc)).rstrip()


def format_exception_safely(exc: BaseException) -> str:
    """A traceback (chained causes included) in which database errors keep only their type."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        context = None if current.__suppress_context__ else current.__context__
        current = current.__cause__ or context
    blocks = [
        "Traceback (most recent call last):\n"
        + "".join(traceback.format_tb(item.__traceback__))
        + _exception_line(item)
        for item in reversed(chain)
    ]
    return "\nThe above exception led to the following:\n".join(blocks)


class KeyValueFormatter(logging.Formatter):
    """Render extra fields as ``key=value`` so a line can be grepped and parsed."""

    def format(self, record: logging.LogRecord) -> str:
        """Format one record on one line."""
        parts = [
            self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            record.levelname.lower(),
            record.name,
            record.getMessage().replace("\n", " "),
        ]
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                parts.append(f"{key}={_quote(value)}")
        if record.exc_info:
            parts.append("exc=" + _quote(self.formatException(record.exc_info)))
        return " ".join(parts)

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        """The traceback, with database errors' messages hidden."""
        if isinstance(ei, tuple) and len(ei) == 3 and isinstance(ei[1], BaseException):
            return format_exception_safely(ei[1])
        return super().formatException(ei)


def _quote(value: Any) -> str:
    if isinstance(value, BaseException):
        value = _exception_line(value)
    text = str(value).replace("\n", "\\n")
    if not text or any(c in text for c in ' "='):
        return '"' + text.replace('"', '\\"') + '"'
    return text


def configure_logging(level: str = "INFO") -> None:
    """Send key=value lines to stderr; quieten chatty libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log prints query strings: `worklist api` turns it off and
    # worklist.access logs each request by route template instead.
    for noisy in ("pynetdicom", "uvicorn.access", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
