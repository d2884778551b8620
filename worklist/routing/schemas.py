"""Payloads of ``/api/v1/routing/rules``: the ordered rule list."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from worklist.routing.matcher import Rule
from worklist.subspecialties.schemas import Printable, SubspecialtyCode

MAX_RULES = 500
MAX_PATTERN_LENGTH = 500

Modality = Annotated[str, StringConstraints(max_length=16), Printable]
BodyPart = Annotated[str, StringConstraints(max_length=64), Printable]
Pattern = Annotated[str, StringConstraints(max_length=MAX_PATTERN_LENGTH), Printable]


class RoutingRuleIn(BaseModel):
    """One rule; a field left out (or null) matches anything."""

    model_config = ConfigDict(extra="forbid", strict=True)

    subspecialty: SubspecialtyCode = Field(description="The code a matching study gets")
    modality: Modality | None = Field(
        default=None, description="Matches any of the study's modalities, e.g. ``CT``"
    )
    body_part: BodyPart | None = Field(
        default=None, description="Body Part Examined (0018,0015), e.g. ``HEAD``"
    )
    procedure_pattern: Pattern | None = Field(
        default=None,
        description="Case-insensitive regular expression searched in the order's procedure "
        "code and name and the study description",
    )
    max_age_years: int | None = Field(
        default=None, ge=1, le=200, description="Matches a patient younger than this"
    )

    def as_rule(self, position: int) -> Rule:
        """The matcher's rule at ``position``."""
        return Rule(position=position, **self.model_dump())


class RoutingRuleOut(RoutingRuleIn):
    """A stored rule; ``position`` is what a routed study's ``subspecialty_rule`` names."""

    position: int

    @classmethod
    def of(cls, rule: Rule) -> RoutingRuleOut:
        """The public view of a rule."""
        return cls(
            position=rule.position,
            subspecialty=rule.subspecialty,
            modality=rule.modality,
            body_part=rule.body_part,
            procedure_pattern=rule.procedure_pattern,
            max_age_years=rule.max_age_years,
        )


class RoutingRulesIn(BaseModel):
    """The whole new list, in order (first match wins); ``[]`` routes nothing."""

    model_config = ConfigDict(extra="forbid", strict=True)

    rules: list[RoutingRuleIn] = Field(max_length=MAX_RULES)


class RoutingRules(BaseModel):
    """The rule list in order."""

    rules: list[RoutingRuleOut]


class RoutingChange(RoutingRules):
    """The new list, and how many unreported studies it re-routed."""

    rerouted: int
