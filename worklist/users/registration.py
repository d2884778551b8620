"""Professional registration numbers: GMC (doctors) and HCPC (reporting radiographers).

Stored in one canonical form (``GMC1234567``, ``RA12345``) and sent in FHIR under the
UK Core identifier systems, so the receiving trust can check the register.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from worklist.errors import InvalidInput

GMC_NUMBER_SYSTEM = "https://fhir.hl7.org.uk/Id/gmc-number"
HCPC_NUMBER_SYSTEM = "https://fhir.hl7.org.uk/Id/hcpc-number"
GMC_PREFIX = "GMC"
INVALID_REGISTRATION = (
    "registration must be a GMC number (GMC1234567, or its 7 digits) "
    "or an HCPC number (two letters and 4-6 digits, e.g. RA12345)"
)

# The GMC reference number is 7 digits; "GMC" and the consultant-code "C" are prefixes.
_GMC = re.compile(r"^(?:GMC|C)?(\d{7})$")
_HCPC = re.compile(r"^(?:HCPC)?([A-Z]{2}\d{4,6})$")
_SEPARATORS = re.compile(r"[\s\-/]+")


@dataclass(frozen=True)
class RegistrationId:
    """A registration as a FHIR identifier (system and value)."""

    system: str
    value: str


def normalise_registration(text: str) -> str:
    """The canonical form of a GMC or HCPC number; InvalidInput for anything else."""
    compact = _SEPARATORS.sub("", text).upper()
    if gmc := _GMC.match(compact):
        return GMC_PREFIX + gmc.group(1)
    if hcpc := _HCPC.match(compact):
        return hcpc.group(1)
    raise InvalidInput(INVALID_REGISTRATION)


def registration_identifier(registration: str) -> RegistrationId:
    """The UK Core identifier of a stored (canonical) registration."""
    if gmc := _GMC.match(registration):
        return RegistrationId(system=GMC_NUMBER_SYSTEM, value=gmc.group(1))
    return RegistrationId(system=HCPC_NUMBER_SYSTEM, value=registration)
