"""FHIR errors: a domain error whose body is an R4 ``OperationOutcome``.

The FHIR endpoints answer bad input the way FHIR clients read it (one issue with a
code from the ``issue-type`` value set, a diagnostic and the element at fault) rather
than with the API's ``{"detail"}``. The diagnostics name elements, never their values:
a request's values are patient data.
"""

from __future__ import annotations

import enum
from typing import Any

from worklist.errors import DomainError
from worklist.reports.fhir import FHIR_JSON


class IssueType(enum.StrEnum):
    """The ``OperationOutcome.issue.code`` values we answer with (FHIR ``issue-type``)."""

    STRUCTURE = "structure"
    REQUIRED = "required"
    VALUE = "value"
    INVALID = "invalid"
    FORBIDDEN = "forbidden"
    NOT_SUPPORTED = "not-supported"
    NOT_FOUND = "not-found"


def operation_outcome(
    diagnostics: str, *, code: IssueType, expression: str | None = None
) -> dict[str, Any]:
    """An OperationOutcome with one error issue."""
    issue: dict[str, Any] = {"severity": "error", "code": code.value, "diagnostics": diagnostics}
    if expression is not None:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


class FhirError(DomainError):
    """A refused FHIR request; the status comes from the subclass."""

    code = IssueType.INVALID

    def __init__(self, detail: str, *, expression: str | None = None) -> None:
        super().__init__(detail)
        self.expression = expression

    def body(self) -> dict[str, Any]:
        """The OperationOutcome."""
        return operation_outcome(self.detail, code=self.code, expression=self.expression)

    def headers(self) -> dict[str, str]:
        """FHIR's media type."""
        return {"Content-Type": FHIR_JSON}


class MalformedResource(FhirError):
    """Not JSON, not a ServiceRequest, or an element of the wrong type (400)."""

    status_code = 400
    code = IssueType.STRUCTURE


class UnusableResource(FhirError):
    """A well-formed resource we cannot act on: a required element missing, a value we
    do not accept (422)."""

    status_code = 422
    code = IssueType.VALUE


class MissingElement(UnusableResource):
    """A required element is absent (422)."""

    code = IssueType.REQUIRED


class UnsupportedMediaType(FhirError):
    """The body is not FHIR JSON (415)."""

    status_code = 415
    code = IssueType.NOT_SUPPORTED


class FhirForbidden(FhirError):
    """The caller may not do this (403)."""

    status_code = 403
    code = IssueType.FORBIDDEN


class FhirNotFound(FhirError):
    """No such resource, or not visible to the caller (404)."""

    status_code = 404
    code = IssueType.NOT_FOUND
