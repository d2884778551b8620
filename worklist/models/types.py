"""Column types for the domain enumerations (native PostgreSQL enums)."""

from __future__ import annotations

from sqlalchemy import Enum

from worklist.enums import Priority, Role, StudyStatus


def _values(enum_cls: type[Role] | type[Priority] | type[StudyStatus]) -> list[str]:
    return [member.value for member in enum_cls]


RoleType = Enum(Role, name="user_role", values_callable=_values, validate_strings=True)
PriorityType = Enum(Priority, name="study_priority", values_callable=_values, validate_strings=True)
StudyStatusType = Enum(
    StudyStatus, name="study_status", values_callable=_values, validate_strings=True
)
