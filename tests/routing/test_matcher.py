"""The routing matcher as a table: first match wins, absent fields match anything."""

from __future__ import annotations

from datetime import date

import pytest

from worklist.routing.matcher import (
    UNROUTED,
    Routed,
    Rule,
    StudyFacts,
    age_in_years,
    route,
)

RULES = (
    Rule(0, "paediatric", max_age_years=16),
    Rule(1, "neuro", modality="CT", body_part="HEAD"),
    Rule(2, "neuro", modality="MR", procedure_pattern=r"brain|head|^XMHEA"),
    Rule(3, "breast", modality="MG"),
    Rule(4, "chest", procedure_pattern=r"\bchest\b|thorax"),
    Rule(5, "msk", body_part="KNEE"),
    Rule(6, "general", modality="CR"),
)

ADULT = 40


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        # Age first: a child's head CT is paediatric, whatever else matches.
        (StudyFacts(("CT",), "HEAD", (), 9), Routed("paediatric", 0)),
        (StudyFacts(("CT",), "HEAD", (), 15), Routed("paediatric", 0)),
        # max_age_years is "younger than": 16 is not.
        (StudyFacts(("CT",), "HEAD", (), 16), Routed("neuro", 1)),
        # Unknown age never matches an age rule.
        (StudyFacts(("CT",), "HEAD", (), None), Routed("neuro", 1)),
        # Modality and body part compare case-insensitively, trimmed.
        (StudyFacts(("ct",), " head ", (), ADULT), Routed("neuro", 1)),
        # Any of the study's modalities.
        (StudyFacts(("SR", "CT"), "HEAD", (), ADULT), Routed("neuro", 1)),
        # Both given fields must match: CT of the knee is not neuro.
        (StudyFacts(("CT",), "KNEE", (), ADULT), Routed("msk", 5)),
        # Pattern searched in each text, case-insensitively.
        (StudyFacts(("MR",), None, ("XMHEA",), ADULT), Routed("neuro", 2)),
        (StudyFacts(("MR",), None, ("MRI Brain with contrast",), ADULT), Routed("neuro", 2)),
        (StudyFacts(("MR",), None, ("MR lumbar spine",), ADULT), UNROUTED),
        # No modality in the rule: any modality.
        (StudyFacts(("CT",), None, ("CT CHEST ABDO PELVIS",), ADULT), Routed("chest", 4)),
        (StudyFacts(("CR",), "CHEST", ("XR chest",), ADULT), Routed("chest", 4)),
        (StudyFacts(("CR",), None, ("chestnut",), ADULT), Routed("general", 6)),
        (StudyFacts(("MG",), "BREAST", (), ADULT), Routed("breast", 3)),
        # Nothing matches: no subspecialty.
        (StudyFacts(("US",), "ABDOMEN", ("US abdomen",), ADULT), UNROUTED),
        (StudyFacts((), None, (), None), UNROUTED),
    ],
)
def test_first_matching_rule_gives_the_subspecialty(facts: StudyFacts, expected: Routed) -> None:
    assert route(RULES, facts) == expected


def test_rules_are_tried_by_position_not_list_order() -> None:
    rules = [Rule(1, "general"), Rule(0, "neuro", modality="CT")]

    assert route(rules, StudyFacts(("CT",))) == Routed("neuro", 0)
    assert route(rules, StudyFacts(("MR",))) == Routed("general", 1)


def test_a_rule_with_no_fields_matches_everything() -> None:
    assert route([Rule(0, "general")], StudyFacts()) == Routed("general", 0)


def test_no_rules_route_nothing() -> None:
    assert route([], StudyFacts(("CT",), "HEAD", ("CT head",), 5)) == UNROUTED


@pytest.mark.parametrize(
    ("birth", "on", "years"),
    [
        (date(2010, 6, 15), date(2026, 6, 14), 15),
        (date(2010, 6, 15), date(2026, 6, 15), 16),
        (date(2008, 2, 29), date(2026, 2, 28), 17),
        (date(2008, 2, 29), date(2026, 3, 1), 18),
        (None, date(2026, 1, 1), None),
        (date(2000, 1, 1), None, None),
    ],
)
def test_age_counts_whole_years_to_the_day(
    birth: date | None, on: date | None, years: int | None
) -> None:
    assert age_in_years(birth, on) == years
