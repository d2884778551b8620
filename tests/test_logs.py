"""Log lines: database errors keep their type and traceback but never their message."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from worklist.db import make_engine
from worklist.logs import HIDDEN_MESSAGE, KeyValueFormatter, format_exception_safely

MARKER = "PATIENT-MARKER-77aa"


def _record(exc: BaseException) -> logging.LogRecord:
    return logging.LogRecord(
        "worklist.test", logging.ERROR, __file__, 1, "job failed", None, (type(exc), exc, None)
    )


def _database_error(engine: Engine) -> DBAPIError:
    with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
        # PostgreSQL quotes the value in its message: invalid input syntax ... "MARKER".
        conn.execute(text("SELECT CAST(:value AS integer)"), {"value": MARKER})
    return caught.value


def test_a_database_error_is_logged_with_its_type_but_not_its_message(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        error = _database_error(engine)
    finally:
        engine.dispose()

    line = KeyValueFormatter().format(_record(error))

    assert MARKER not in line
    assert "sqlalchemy.exc.DataError" in line
    assert HIDDEN_MESSAGE in line
    assert "psycopg.errors.InvalidTextRepresentation" in line  # the chained cause, also hidden


def test_engines_hide_statement_parameters_from_their_errors(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1)
    plain = create_engine(engine.url)
    try:
        hidden, shown = _database_error(engine), _database_error(plain)
    finally:
        engine.dispose()
        plain.dispose()

    assert "parameters hidden" in str(hidden)
    assert f"'value': '{MARKER}'" in str(shown)  # what hide_parameters takes away


def test_other_errors_keep_their_message_and_chain() -> None:
    try:
        try:
            raise KeyError("inner-detail")
        except KeyError as exc:
            raise RuntimeError("outer-detail") from exc
    except RuntimeError as exc:
        text_ = format_exception_safely(exc)

    assert "KeyError: 'inner-detail'" in text_
    assert "RuntimeError: outer-detail" in text_
    assert text_.index("inner-detail") < text_.index("outer-detail")


def test_a_connection_failure_keeps_its_message() -> None:
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", pool_size=1)
    try:
        with pytest.raises(DBAPIError) as caught, engine.connect():
            pass
    finally:
        engine.dispose()

    line = KeyValueFormatter().format(_record(caught.value))

    assert "OperationalError" in line
    assert HIDDEN_MESSAGE not in line
    assert "127.0.0.1" in line


def test_a_database_error_given_as_a_field_is_shown_by_type_only(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        error = _database_error(engine)
    finally:
        engine.dispose()
    record = logging.LogRecord("worklist.test", logging.WARNING, __file__, 1, "skipped", None, None)
    record.error = error

    line = KeyValueFormatter().format(record)

    assert MARKER not in line
    assert "sqlalchemy.exc.DataError" in line
