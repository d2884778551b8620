"""Payloads of ``/api/v1/subspecialties``."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from worklist.models import Subspecialty

CODE_PATTERN = "^[a-z0-9_]{1,32}$"
MAX_NAME_LENGTH = 200


def _printable(value: str) -> str:
    # PostgreSQL text holds no NUL; names and patterns hold no control characters either.
    if not value.isprintable():
        raise ValueError("must be printable text (no control characters)")
    return value


Printable = AfterValidator(_printable)
SubspecialtyCode = Annotated[str, StringConstraints(pattern=CODE_PATTERN)]
SubspecialtyName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_LENGTH),
    Printable,
]


class SubspecialtyOut(BaseModel):
    """A code of the vocabulary; an inactive one is kept for the records that name it."""

    code: str
    name: str
    active: bool

    @classmethod
    def of(cls, row: Subspecialty) -> SubspecialtyOut:
        """The public view of a vocabulary row."""
        return cls(code=row.code, name=row.name, active=row.active)


class SubspecialtyList(BaseModel):
    """The vocabulary by code (inactive codes only for admins)."""

    subspecialties: list[SubspecialtyOut]


class SubspecialtyIn(BaseModel):
    """A new code: lowercase letters, digits and ``_``, at most 32."""

    model_config = ConfigDict(extra="forbid", strict=True)

    code: SubspecialtyCode = Field(description="e.g. ``interventional_neuro``")
    name: SubspecialtyName


class SubspecialtyPatch(BaseModel):
    """A new name, or retiring (``active: false``) or reviving a code."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: SubspecialtyName | None = None
    active: bool | None = None
