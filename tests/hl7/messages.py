"""Realistic order messages as a trust's RIS sends them, built field by field (numbered
as the standard numbers them, so a test says which field it means)."""

from __future__ import annotations

from collections.abc import Mapping

from worklist.identity import make_nhs_number

NHS_NUMBER = make_nhs_number(4242)
INVALID_NHS_NUMBER = NHS_NUMBER[:9] + str((int(NHS_NUMBER[9]) + 1) % 10)
FACILITY = "RXA_RIS"
Fields = Mapping[int, str]


def segment(name: str, fields: Fields) -> str:
    """One segment with ``fields`` at their numbers (MSH numbering: MSH-1 is the '|')."""
    if name == "MSH":
        values = ["MSH", fields.get(2, "^~\\&")]
        top = max(fields)
        values += [fields.get(n, "") for n in range(3, top + 1)]
        return values[0] + "|" + "|".join(values[1:])
    top = max(fields) if fields else 0
    return "|".join([name, *(fields.get(n, "") for n in range(1, top + 1))])


def msh(
    *,
    control_id: str = "MSG00001",
    kind: str = "ORM^O01",
    version: str = "2.4",
    facility: str = FACILITY,
    charset: str = "",
) -> str:
    """MSH from the RIS ``CRIS`` at ``facility`` to the network's worklist."""
    fields = {
        3: "CRIS",
        4: facility,
        5: "WORKLIST",
        6: "IMAGING_NET",
        7: "20260105101500",
        9: kind,
        10: control_id,
        11: "P",
        12: version,
        15: "AL",
        16: "NE",
    }
    if charset:
        fields[18] = charset
    return segment("MSH", fields)


def pid(*, identifiers: str | None = None, name: str = "SMITH^JANE^ANNE^^MRS") -> str:
    """PID with a hospital number and an NHS number (unless ``identifiers`` says)."""
    if identifiers is None:
        identifiers = f"RXA1234567^^^RXA^MR~{NHS_NUMBER}^^^NHS^NH"
    return segment("PID", {1: "1", 3: identifiers, 5: name, 7: "19800101", 8: "F"})


def pv1(patient_class: str = "O") -> str:
    """PV1 with a patient class (E, I, O)."""
    return segment("PV1", {1: "1", 2: patient_class, 3: "XRAY^^^RXA"})


def orc(
    control: str = "NW",
    *,
    placer: str = "PL1001",
    filler: str = "FL2001",
    status: str = "SC",
    priority: str = "",
    transaction: str = "20260105101000",
    clinician: str = "C1234567^JONES^PETER^^^DR",
    organisation: str = "Riverside Surgery^^^^^^^^^A81001",
) -> str:
    """ORC: control, numbers, status, timing (ORC-7.6 priority), clinician, organisation."""
    fields = {1: control, 2: placer, 3: filler, 5: status, 9: transaction, 12: clinician}
    if priority:
        fields[7] = f"^^^^^{priority}"
    if organisation:
        fields[21] = organisation
    return segment("ORC", fields)


def obr(
    *,
    accession: str = "ACC1001",
    placer: str = "PL1001",
    filler: str = "FL2001",
    procedure: str = "XCHES^XR Chest^NICIP",
    priority: str = "R",
    requested: str = "20260105100000",
    clinical_info: str = "Cough for 6 weeks, smoker",
    reason: str = "^Query lung cancer",
    clinician: str = "",
) -> str:
    """OBR: numbers, OBR-4 procedure, OBR-6 date, OBR-13 info, OBR-18 accession,
    OBR-27.6 priority, OBR-31 reason."""
    fields = {
        1: "1",
        2: placer,
        3: filler,
        4: procedure,
        6: requested,
        13: clinical_info,
        18: accession,
        31: reason,
    }
    if priority:
        fields[27] = f"^^^^^{priority}"
    if clinician:
        fields[16] = clinician
    return segment("OBR", fields)


def tq1(priority: str) -> str:
    """TQ1 with TQ1-9 priority (v2.5)."""
    return segment("TQ1", {1: "1", 9: priority})


def ipc(accession: str, study_uid: str = "1.2.826.0.1.3680043.8.498.1") -> str:
    """IPC: accession, requested procedure id, Study Instance UID, step id, modality."""
    return segment("IPC", {1: accession, 2: "RP1", 3: study_uid, 4: "SPS1", 5: "CR"})


def message(*segments: str) -> bytes:
    """The segments as one message (CR-terminated), UTF-8."""
    return ("\r".join(segments) + "\r").encode()


def orm(
    control: str = "NW",
    *,
    control_id: str = "MSG00001",
    version: str = "2.4",
    accession: str = "ACC1001",
    priority: str = "R",
    patient_class: str = "O",
    facility: str = FACILITY,
) -> bytes:
    """A complete ORM^O01."""
    kind = "ORM^O01" if version == "2.3" else "ORM^O01^ORM_O01"
    return message(
        msh(control_id=control_id, kind=kind, version=version, facility=facility),
        pid(),
        pv1(patient_class),
        orc(control),
        obr(accession=accession, priority=priority),
    )


def omi(
    control: str = "NW",
    *,
    control_id: str = "MSG00002",
    version: str = "2.5.1",
    accession: str = "ACC3001",
    priority: str = "S",
) -> bytes:
    """A complete OMI^O23 (v2.5 structure: TQ1 carries the priority, IPC the accession)."""
    return message(
        msh(control_id=control_id, kind="OMI^O23^OMI_O23", version=version),
        pid(),
        pv1("I"),
        orc(control, placer="PL3001", filler="FL3001"),
        tq1(priority),
        obr(accession="OBRACC", placer="PL3001", filler="FL3001", priority=""),
        ipc(accession),
    )
