"""The part of an R4 ServiceRequest we read, as pydantic models (everything else is ignored).

Only the elements an order needs are typed; their values are checked for type, length
and NUL (PostgreSQL text cannot hold one). Contained resources are kept as JSON and read
with the model of their type when a reference points at them.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from worklist.orders.outcome import MalformedResource

MAX_STRING = 1_000
MAX_TEXT = 10_000
MAX_ITEMS = 100
M = TypeVar("M", bound=BaseModel)


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    return text


String = Annotated[str, Field(max_length=MAX_STRING), AfterValidator(_no_nul)]
Text = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_no_nul)]


class Element(BaseModel):
    """A FHIR element: strict types, unknown elements (extensions, ``_x``...) ignored."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class Coding(Element):
    """A code from a code system."""

    system: String | None = None
    code: String | None = None
    display: String | None = None


class CodeableConcept(Element):
    """Codings and/or text."""

    coding: Annotated[list[Coding], Field(max_length=MAX_ITEMS)] = []
    text: Text | None = None

    def codes(self, system: str | None = None) -> list[str]:
        """The codes of this concept (of ``system`` only, when given)."""
        return [c.code for c in self.coding if c.code and (system is None or c.system == system)]


class Identifier(Element):
    """A business identifier: a value in a system, optionally typed."""

    type: CodeableConcept | None = None
    system: String | None = None
    value: String | None = None


class Reference(Element):
    """A reference: literal (``#contained``, ``Type/id``), logical (identifier), display."""

    reference: String | None = None
    type: String | None = None
    identifier: Identifier | None = None
    display: String | None = None

    def contained_id(self) -> str | None:
        """The id of the contained resource this points at (``#id``), if it does."""
        if self.reference and self.reference.startswith("#"):
            return self.reference[1:]
        return None

    def resource_type(self) -> str | None:
        """The type referred to: ``type``, else the type part of ``Type/id``."""
        if self.type:
            return self.type
        if self.reference and "/" in self.reference and not self.reference.startswith("#"):
            return self.reference.rsplit("/", 2)[-2]
        return None


class HumanName(Element):
    """A person's name."""

    text: String | None = None
    family: String | None = None
    given: Annotated[list[String], Field(max_length=MAX_ITEMS)] = []
    prefix: Annotated[list[String], Field(max_length=MAX_ITEMS)] = []
    suffix: Annotated[list[String], Field(max_length=MAX_ITEMS)] = []

    def display(self) -> str | None:
        """The name as written for people: ``text``, else prefix, given and family."""
        if self.text:
            return self.text
        parts = [*self.prefix, *self.given, *([self.family] if self.family else [])]
        return " ".join(parts) or None


class Person(Element):
    """What a contained Patient or Practitioner tells us."""

    identifier: Annotated[list[Identifier], Field(max_length=MAX_ITEMS)] = []
    name: Annotated[list[HumanName], Field(max_length=MAX_ITEMS)] = []
    birthDate: String | None = None  # noqa: N815 - FHIR's element name


class Organization(Element):
    """A contained Organization."""

    identifier: Annotated[list[Identifier], Field(max_length=MAX_ITEMS)] = []
    name: String | None = None


class PractitionerRole(Element):
    """A contained PractitionerRole: the clinician and the organisation they act for."""

    practitioner: Reference | None = None
    organization: Reference | None = None


class Encounter(Element):
    """A contained Encounter: its class (R4: one Coding) is the patient's setting."""

    class_: Annotated[Coding | None, Field(alias="class")] = None


class ContainedResource(BaseModel):
    """A contained resource: its type and id; the rest is read with the model of its type."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    resourceType: String  # noqa: N815
    id: String | None = None


class ServiceRequestIn(Element):
    """An R4 ServiceRequest, the elements an order is made of."""

    resourceType: String  # noqa: N815
    status: String | None = None
    identifier: Annotated[list[Identifier], Field(max_length=MAX_ITEMS)] = []
    code: CodeableConcept | None = None
    priority: String | None = None
    subject: Reference | None = None
    authoredOn: String | None = None  # noqa: N815
    requester: Reference | None = None
    performer: Annotated[list[Reference], Field(max_length=MAX_ITEMS)] = []
    reasonCode: Annotated[list[CodeableConcept], Field(max_length=MAX_ITEMS)] = []  # noqa: N815
    reasonReference: Annotated[list[Reference], Field(max_length=MAX_ITEMS)] = []  # noqa: N815
    supportingInfo: Annotated[list[Reference], Field(max_length=MAX_ITEMS)] = []  # noqa: N815
    contained: Annotated[list[ContainedResource], Field(max_length=MAX_ITEMS)] = []

    def contained_resource(self, reference: Reference | None) -> dict[str, Any] | None:
        """The contained resource ``reference`` points at (``#id``), as JSON, if any."""
        wanted = reference.contained_id() if reference is not None else None
        if wanted is None:
            return None
        for resource in self.contained:
            if resource.id == wanted:
                return resource.model_dump(by_alias=True)
        return None


def validate_element(model: type[M], data: object, where: str) -> M:
    """``data`` read as ``model``; MalformedResource (400) naming the first element at fault
    (the message names the element and the rule, never the value)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        path = ".".join([where, *(str(part) for part in error["loc"])])
        raise MalformedResource(f"{path}: {error['msg']}", expression=path) from exc
