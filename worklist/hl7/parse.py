"""ORM^O01 and OMI^O23 (HL7 v2.3 to v2.5.1) to ``OrderContent``, one per ORC group.

Where each value comes from (the first that is present wins):

- control: ORC-1 (NW, XO, CA, OC, SC; anything else is an AE, table value not found);
- placer / filler order number: ORC-2 / ORC-3, else OBR-2 / OBR-3 (EI.1);
- accession number: IPC-1 (OMI), OBR-18, then the filler order number, which many RIS
  use as the accession number; a group with none is an AE;
- RIS order status: ORC-5;
- patient: every PID-3 repetition with its assigning authority (CX.4, namespace id, else
  universal id) and identifier type (CX.5). An identifier is an NHS number when its type
  is ``NH`` or its authority is ``NHS`` (or the NHS number OID); it must pass Modulus 11,
  else the message is an AE and nothing is stored. The local id is the first identifier
  that is not an NHS number. PID-5 name (stored as DICOM PN, ``FAMILY^GIVEN^MIDDLE^PREFIX
  ^SUFFIX``), PID-7 birth date;
- procedure: OBR-4 code, text and coding system; when the alternate triplet is NICIP or
  SNOMED CT and the primary is not, the national code is kept (SNOMED CT spelled ``SCT``,
  table 0396);
- priority: TQ1-9, else OBR-27.6, else ORC-7.6, mapped by ``WORKLIST_HL7_PRIORITY_MAP``
  (a code not in the map keeps the study's priority; the code is stored as sent);
- referrer: ORC-12, else OBR-16 (XCN: id, then "prefix given family"); organisation ORC-21
  (XON.1 name; XON.10, else XON.3, code);
- patient source: PV1-2 ``E`` emergency, ``I`` inpatient; otherwise ``gp`` when the
  referring organisation's code is an ODS GP practice code (one letter and five digits,
  e.g. A81001), else ``O`` outpatient, else ``other``; unsaid without PV1 and ORC-21;
- request date: ORC-9 of a new order (NW), else OBR-6; times without an offset are
  England's wall clock;
- indication: OBR-31 (reason for study, each repetition's text or code), then OBR-13.

PID is required in every message (cancels included), and ORC starts each order. Only
the segments and fields above are split (``fields.Segment``); the rest is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from worklist.enums import PatientSource, Priority
from worklist.hl7.errors import ErrorCode, Location, error, reject
from worklist.hl7.fields import (
    Components,
    Header,
    Segment,
    component_of,
    decode,
    parse_date,
    parse_datetime,
    read_header,
)
from worklist.identity import normalise_nhs_number
from worklist.orders.content import (
    OrderContent,
    OrderControl,
    OrderPatient,
    PatientIdentifier,
    Referrer,
    is_gp_practice,
)

SUPPORTED_VERSIONS = frozenset({"2.3", "2.3.1", "2.4", "2.5", "2.5.1"})
# Message type -> its one trigger event.
ORDER_EVENTS = {"ORM": "O01", "OMI": "O23"}
NHS_TYPE = "NH"
NHS_AUTHORITIES = frozenset({"NHS", "2.16.840.1.113883.2.1.4.1"})
NATIONAL_CODING_SYSTEMS = {
    "NICIP": "NICIP",
    "SCT": "SCT",
    "SNM": "SCT",
    "SNOMED": "SCT",
    "SNOMEDCT": "SCT",
    "SNOMED CT": "SCT",
    "SNOMED-CT": "SCT",
    "2.16.840.1.113883.6.96": "SCT",
}
PATIENT_CLASSES = {"E": PatientSource.EMERGENCY, "I": PatientSource.INPATIENT}
# Longest identifier kept (HL7 EI.1 and CX.1 allow 199): they are indexed.
MAX_IDENTIFIER = 199


@dataclass(frozen=True)
class OrderMessage:
    """A parsed order message: its header and one order per ORC group."""

    header: Header
    orders: tuple[OrderContent, ...]


def check_header(header: Header) -> None:
    """AR unless the header is an order message we take, with a control id."""
    expected = ORDER_EVENTS.get(header.message_type)
    if expected is None:
        raise reject(
            ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            "only ORM^O01 and OMI^O23 are accepted",
            Location("MSH", 1, 9),
        )
    if header.trigger_event != expected:
        raise reject(
            ErrorCode.UNSUPPORTED_EVENT,
            "only ORM^O01 and OMI^O23 are accepted",
            Location("MSH", 1, 9),
        )
    if header.version not in SUPPORTED_VERSIONS:
        raise reject(
            ErrorCode.UNSUPPORTED_VERSION,
            "HL7 versions 2.3 to 2.5.1 are accepted",
            Location("MSH", 1, 12),
        )
    if not header.control_id:
        raise reject(
            ErrorCode.REQUIRED_FIELD_MISSING,
            "MSH-10 message control id is required",
            Location("MSH", 1, 10),
        )


def parse_order_message(data: bytes, *, priority_map: Mapping[str, Priority]) -> OrderMessage:
    """Parse one message (without its MLLP frame); raises ``Hl7Rejection``."""
    text = decode(data)
    return parse_orders(read_header(text), text, priority_map=priority_map)


def parse_orders(
    header: Header, text: str, *, priority_map: Mapping[str, Priority]
) -> OrderMessage:
    """Parse decoded ``text`` whose MSH is ``header``; raises ``Hl7Rejection``."""
    check_header(header)
    return _read(header, _segments(header, text), priority_map)


# The fields read from each segment (MSH's are read by ``read_header``). Only these are
# split: the rest of a message (notes, observations, insurance, addresses) never is.
_READ_UP_TO = {"PID": 7, "PV1": 2, "ORC": 21, "OBR": 31, "TQ1": 9, "IPC": 1}


def _segments(header: Header, text: str) -> list[Segment]:
    separator, encoding = header.field_separator, header.encoding_characters
    kept = []
    for line in text.split("\r")[1:]:
        last = _READ_UP_TO.get(line[:3])
        if last is not None and (len(line) == 3 or line[3] == separator):
            fields = line.split(separator, last + 1)[: last + 1]
            kept.append(Segment(fields, field_separator=separator, encoding=encoding))
    return kept


@dataclass
class _Group:
    orc: Segment
    sequence: int
    obr: Segment | None = None
    tq1: Segment | None = None
    ipc: Segment | None = None


def _read(
    header: Header, segments: list[Segment], priority_map: Mapping[str, Priority]
) -> OrderMessage:
    pid: Segment | None = None
    pv1: Segment | None = None
    groups: list[_Group] = []
    for segment in segments:
        name = segment.name
        if name == "PID":
            if groups:
                raise error(ErrorCode.SEGMENT_SEQUENCE, "PID after ORC", Location("PID"))
            pid = pid or segment
        elif name == "PV1" and not groups:
            pv1 = pv1 or segment
        elif name == "ORC":
            groups.append(_Group(orc=segment, sequence=len(groups) + 1))
        elif name in ("OBR", "TQ1", "IPC"):
            if not groups:
                raise error(ErrorCode.SEGMENT_SEQUENCE, f"{name} before ORC", Location(name))
            group = groups[-1]
            slot = name.lower()
            if getattr(group, slot) is None:
                setattr(group, slot, segment)
    if pid is None:
        raise error(ErrorCode.SEGMENT_SEQUENCE, "PID segment missing", Location("PID"))
    if not groups:
        raise error(ErrorCode.SEGMENT_SEQUENCE, "ORC segment missing", Location("ORC"))
    if header.message_type == "OMI":
        for group in groups:
            if group.obr is None:
                raise error(
                    ErrorCode.SEGMENT_SEQUENCE,
                    "OBR segment missing",
                    Location("OBR", group.sequence),
                )
    patient = _patient(pid)
    orders = tuple(_order(group, patient, pv1, priority_map) for group in groups)
    return OrderMessage(header=header, orders=orders)


def _patient(pid: Segment) -> OrderPatient:
    identifiers: list[PatientIdentifier] = []
    nhs_number: str | None = None
    local_id: str | None = None
    for rep in pid.repetitions(3):
        value = component_of(rep, 1)
        if not value:
            continue
        if len(value) > MAX_IDENTIFIER:
            raise error(ErrorCode.DATA_TYPE, "patient identifier too long", Location("PID", 1, 3))
        authority = component_of(rep, 4, 1) or component_of(rep, 4, 2) or None
        kind = component_of(rep, 5).upper() or None
        identifiers.append(PatientIdentifier(value=value, authority=authority, type=kind))
        if kind == NHS_TYPE or (authority or "").upper() in NHS_AUTHORITIES:
            valid = normalise_nhs_number(value)
            if valid is None:
                raise error(ErrorCode.DATA_TYPE, "invalid NHS number", Location("PID", 1, 3))
            if nhs_number is not None and nhs_number != valid:
                raise error(ErrorCode.DATA_TYPE, "conflicting NHS numbers", Location("PID", 1, 3))
            nhs_number = valid
        elif local_id is None:
            local_id = value
    if not identifiers:
        raise error(
            ErrorCode.REQUIRED_FIELD_MISSING,
            "no patient identifier in PID-3",
            Location("PID", 1, 3),
        )
    return OrderPatient(
        identifiers=tuple(identifiers),
        nhs_number=nhs_number,
        local_id=local_id,
        name=_person_name(pid.first(5)),
        birth_date=parse_date(pid.get(7), Location("PID", 1, 7)),
    )


def _person_name(xpn: Components) -> str | None:
    # XPN: family^given^middle^suffix^prefix; DICOM PN: family^given^middle^prefix^suffix.
    family, given, middle = (component_of(xpn, i) for i in (1, 2, 3))
    suffix, prefix = component_of(xpn, 4), component_of(xpn, 5)
    name = "^".join((family, given, middle, prefix, suffix)).rstrip("^")
    return name or None


def _order(
    group: _Group,
    patient: OrderPatient,
    pv1: Segment | None,
    priority_map: Mapping[str, Priority],
) -> OrderContent:
    orc, obr = group.orc, group.obr
    seq = group.sequence
    control = _control(orc, seq)
    placer = orc.get(2) or (obr.get(2) if obr else "") or None
    filler = orc.get(3) or (obr.get(3) if obr else "") or None
    accession = (group.ipc.get(1) if group.ipc else "") or (obr.get(18) if obr else "") or filler
    if not accession:
        raise error(
            ErrorCode.REQUIRED_FIELD_MISSING,
            "no accession number (IPC-1, OBR-18 or the filler order number)",
            Location("OBR" if obr else "ORC", seq, 18 if obr else 3),
        )
    for value in (accession, placer, filler):
        if value and len(value) > MAX_IDENTIFIER:
            raise error(ErrorCode.DATA_TYPE, "order number too long", Location("ORC", seq))
    code, system, name = _procedure(obr)
    ris_priority = _priority_code(group)
    referrer = _referrer(orc, obr)
    return OrderContent(
        control=control,
        accession_number=accession,
        placer_order_number=placer,
        filler_order_number=filler,
        ris_status=orc.get(5) or None,
        identifiers=patient.identifiers,
        patient_local_id=patient.local_id,
        nhs_number=patient.nhs_number,
        patient_name=patient.name,
        patient_birth_date=patient.birth_date,
        procedure_code=code,
        procedure_coding_system=system,
        procedure_name=name,
        priority=priority_map.get(ris_priority.upper()) if ris_priority else None,
        ris_priority=ris_priority,
        referrer=referrer,
        patient_source=_patient_source(pv1, referrer),
        indication=_indication(obr),
        requested_at=_requested_at(control, orc, obr, seq),
    )


def _control(orc: Segment, seq: int) -> OrderControl:
    value = orc.get(1).upper()
    try:
        return OrderControl(value)
    except ValueError:
        raise error(
            ErrorCode.TABLE_VALUE_NOT_FOUND,
            "order control must be NW, XO, CA, OC or SC",
            Location("ORC", seq, 1),
        ) from None


def _procedure(obr: Segment | None) -> tuple[str | None, str | None, str | None]:
    if obr is None:
        return None, None, None
    ce = obr.first(4)
    primary = (component_of(ce, 1), component_of(ce, 3), component_of(ce, 2))
    alternate = (component_of(ce, 4), component_of(ce, 6), component_of(ce, 5))
    chosen = primary
    if _national(primary[1]) is None and alternate[0] and _national(alternate[1]) is not None:
        chosen = alternate
    code, system, text = chosen
    system = _national(system) or system
    return code or None, system or None, text or primary[2] or alternate[2] or None


def _national(system: str) -> str | None:
    return NATIONAL_CODING_SYSTEMS.get(system.strip().upper())


def _priority_code(group: _Group) -> str | None:
    candidates = (
        group.tq1.get(9) if group.tq1 else "",
        group.obr.get(27, 6) if group.obr else "",
        group.orc.get(7, 6),
    )
    return next((value for value in candidates if value), None)


def _referrer(orc: Segment, obr: Segment | None) -> Referrer:
    xcn = orc.first(12) or (obr.first(16) if obr else [])
    # XCN: id^family^given^middle^suffix^prefix.
    words = (component_of(xcn, 6), component_of(xcn, 3), component_of(xcn, 2))
    name = " ".join(word for word in words if word)
    xon = orc.first(21)
    return Referrer(
        name=name or None,
        code=component_of(xcn, 1) or None,
        organisation=component_of(xon, 1) or None,
        organisation_code=component_of(xon, 10) or component_of(xon, 3) or None,
    )


def _patient_source(pv1: Segment | None, referrer: Referrer) -> PatientSource | None:
    patient_class = pv1.get(2).upper() if pv1 else ""
    if patient_class in PATIENT_CLASSES:
        return PATIENT_CLASSES[patient_class]
    if is_gp_practice(referrer):
        return PatientSource.GP
    if patient_class == "O":
        return PatientSource.OUTPATIENT
    if pv1 is None and not referrer.organisation_code:
        return None
    return PatientSource.OTHER


def _indication(obr: Segment | None) -> str | None:
    if obr is None:
        return None
    parts = [component_of(rep, 2) or component_of(rep, 1) for rep in obr.repetitions(31)]
    parts.append(obr.get(13))
    seen: list[str] = []
    for part in parts:
        if part and part not in seen:
            seen.append(part)
    return "; ".join(seen) or None


def _requested_at(
    control: OrderControl, orc: Segment, obr: Segment | None, seq: int
) -> datetime | None:
    if control is OrderControl.NEW:
        transaction = parse_datetime(orc.get(9), Location("ORC", seq, 9))
        if transaction is not None:
            return transaction
    return parse_datetime(obr.get(6), Location("OBR", seq, 6)) if obr else None
