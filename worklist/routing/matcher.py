"""The routing rules' matcher: which subspecialty a study gets (a pure function).

Rules are an ordered list; the first rule whose every given field matches wins, and a
field left out matches anything. ``modality`` matches any of the study's modalities,
``body_part`` the study's Body Part Examined (both case-insensitively),
``procedure_pattern`` is a case-insensitive regular expression searched in the order's
procedure code, its procedure name and the study description, and ``max_age_years``
matches a patient younger than it on the study date (a patient of unknown age never
matches it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache


@dataclass(frozen=True)
class Rule:
    """One routing rule; ``position`` is its index in the ordered list."""

    position: int
    subspecialty: str
    modality: str | None = None
    body_part: str | None = None
    procedure_pattern: str | None = None
    max_age_years: int | None = None


@dataclass(frozen=True)
class StudyFacts:
    """What the rules look at in a study, its order and its patient."""

    modalities: Sequence[str] = ()
    body_part: str | None = None
    procedure_texts: Sequence[str] = field(default_factory=tuple)
    age_years: int | None = None


@dataclass(frozen=True)
class Routed:
    """The outcome: a subspecialty and the position of the rule that gave it (or neither)."""

    subspecialty: str | None
    rule: int | None


UNROUTED = Routed(None, None)


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The compiled case-insensitive pattern (re.error for an invalid one)."""
    return re.compile(pattern, re.IGNORECASE)


def age_in_years(birth_date: date | None, on: date | None) -> int | None:
    """Whole years from ``birth_date`` to ``on`` (None when either is unknown)."""
    if birth_date is None or on is None:
        return None
    before_birthday = (on.month, on.day) < (birth_date.month, birth_date.day)
    return on.year - birth_date.year - before_birthday


def _same(value: str, candidates: Iterable[str | None]) -> bool:
    wanted = value.casefold()
    return any(c is not None and c.strip().casefold() == wanted for c in candidates)


def matches(rule: Rule, facts: StudyFacts) -> bool:
    """Whether every field ``rule`` gives matches ``facts``."""
    if rule.modality is not None and not _same(rule.modality, facts.modalities):
        return False
    if rule.body_part is not None and not _same(rule.body_part, (facts.body_part,)):
        return False
    if rule.procedure_pattern is not None:
        pattern = compile_pattern(rule.procedure_pattern)
        if not any(text and pattern.search(text) for text in facts.procedure_texts):
            return False
    return rule.max_age_years is None or (
        facts.age_years is not None and facts.age_years < rule.max_age_years
    )


def route(rules: Sequence[Rule], facts: StudyFacts) -> Routed:
    """The first rule (in position order) that matches, or UNROUTED."""
    for rule in sorted(rules, key=lambda r: r.position):
        if matches(rule, facts):
            return Routed(rule.subspecialty, rule.position)
    return UNROUTED
