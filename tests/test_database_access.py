"""One style of database access in the domain (docs/architecture.md, "Database access")."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from sqlalchemy.orm import Session

import worklist


def _modules() -> Iterator[ModuleType]:
    for info in pkgutil.walk_packages(worklist.__path__, prefix="worklist."):
        if not info.name.endswith(".__main__"):  # importing it runs the CLI
            yield importlib.import_module(info.name)


def _functions(module: ModuleType) -> Iterator[tuple[str, Callable[..., Any]]]:
    for name, value in vars(module).items():
        if getattr(value, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(value):
            yield f"{module.__name__}.{name}", value
        elif inspect.isclass(value):
            for attr, member in vars(value).items():
                if inspect.isfunction(member):
                    yield f"{module.__name__}.{name}.{attr}", member


# Annotations are text (``from __future__ import annotations``); ``AsyncSession`` and
# ``async_sessionmaker[AsyncSession]`` do not match, ``Session | AsyncSession`` does.
_SYNC_SESSION = re.compile(r"(?<![A-Za-z_])Session\b")


def _mentions_sync_session(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    return _SYNC_SESSION.search(text) is not None


def test_no_function_of_the_domain_takes_a_synchronous_session() -> None:
    offenders = []
    for module in _modules():
        for name, function in _functions(module):
            hints = dict(inspect.get_annotations(function))
            hints.pop("return", None)
            if any(_mentions_sync_session(hint) for hint in hints.values()):
                offenders.append(name)

    assert offenders == []


def test_the_check_tells_a_synchronous_session_from_an_async_one() -> None:
    assert _mentions_sync_session("Session | AsyncSession")
    assert _mentions_sync_session("sessionmaker[Session]")
    assert _mentions_sync_session(Session)
    assert not _mentions_sync_session("AsyncSession")
    assert not _mentions_sync_session("async_sessionmaker[AsyncSession]")
