"""The ORM^O01 / OMI^O23 parser: every version, every order control, every field."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tests.hl7 import messages as m
from worklist.config import parse_priority_map
from worklist.enums import PatientSource, Priority
from worklist.hl7.errors import AckCode, ErrorCode, Hl7Rejection
from worklist.hl7.parse import OrderMessage, parse_order_message
from worklist.orders.content import OrderControl, PatientIdentifier, Referrer

PRIORITIES = parse_priority_map("S=stat,A=urgent,R=routine")


def parse(data: bytes) -> OrderMessage:
    return parse_order_message(data, priority_map=PRIORITIES)


def refused(data: bytes) -> Hl7Rejection:
    with pytest.raises(Hl7Rejection) as caught:
        parse(data)
    assert caught.value.text  # ours, short
    return caught.value


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1"])
def test_orm_of_every_version_gives_the_whole_order(version: str) -> None:
    parsed = parse(m.orm(version=version))

    assert parsed.header.control_id == "MSG00001"
    assert parsed.header.facility == m.FACILITY
    (order,) = parsed.orders
    assert order.control is OrderControl.NEW
    assert order.accession_number == "ACC1001"
    assert order.placer_order_number == "PL1001"
    assert order.filler_order_number == "FL2001"
    assert order.ris_status == "SC"
    assert order.identifiers == (
        PatientIdentifier("RXA1234567", "RXA", "MR"),
        PatientIdentifier(m.NHS_NUMBER, "NHS", "NH"),
    )
    assert order.patient_local_id == "RXA1234567"
    assert order.nhs_number == m.NHS_NUMBER
    assert order.patient_name == "SMITH^JANE^ANNE^MRS"
    assert order.patient_birth_date == date(1980, 1, 1)
    assert (order.procedure_code, order.procedure_coding_system, order.procedure_name) == (
        "XCHES",
        "NICIP",
        "XR Chest",
    )
    assert order.priority is Priority.ROUTINE
    assert order.ris_priority == "R"
    assert order.referrer == Referrer(
        name="DR PETER JONES",
        code="C1234567",
        organisation="Riverside Surgery",
        organisation_code="A81001",
    )
    # An outpatient referred by a GP practice is GP direct access.
    assert order.patient_source is PatientSource.GP
    assert order.indication == "Query lung cancer; Cough for 6 weeks, smoker"
    # 10:10 in January in England is 10:10 UTC.
    assert order.requested_at == datetime(2026, 1, 5, 10, 10, tzinfo=UTC)


@pytest.mark.parametrize("version", ["2.4", "2.5", "2.5.1"])
def test_omi_takes_the_accession_from_ipc_and_the_priority_from_tq1(version: str) -> None:
    (order,) = parse(m.omi(version=version, accession="ACC3001", priority="S")).orders

    assert order.accession_number == "ACC3001"
    assert order.placer_order_number == "PL3001"
    assert order.priority is Priority.STAT
    assert order.ris_priority == "S"
    assert order.patient_source is PatientSource.INPATIENT


@pytest.mark.parametrize(
    ("control", "expected"),
    [
        ("NW", OrderControl.NEW),
        ("XO", OrderControl.CHANGE),
        ("CA", OrderControl.CANCEL),
        ("OC", OrderControl.DISCONTINUE),
        ("SC", OrderControl.STATUS),
        ("ca", OrderControl.CANCEL),
    ],
)
def test_every_order_control_is_read(control: str, expected: OrderControl) -> None:
    (order,) = parse(m.orm(control)).orders

    assert order.control is expected


@pytest.mark.parametrize("control", ["XX", "DC", ""])
def test_an_unknown_order_control_is_an_application_error(control: str) -> None:
    rejection = refused(m.orm(control))

    assert rejection.ack is AckCode.ERROR
    assert rejection.code is ErrorCode.TABLE_VALUE_NOT_FOUND
    assert rejection.location is not None
    assert (rejection.location.segment, rejection.location.field) == ("ORC", 1)


def test_without_obr_18_the_filler_order_number_is_the_accession() -> None:
    data = m.message(m.msh(), m.pid(), m.orc("NW", filler="FL9"), m.obr(accession="", filler="FL9"))

    (order,) = parse(data).orders

    assert order.accession_number == "FL9"


def test_a_cancel_of_orc_alone_finds_its_order_by_the_filler_number() -> None:
    (order,) = parse(m.message(m.msh(), m.pid(), m.orc("CA", filler="FL2001"))).orders

    assert order.control is OrderControl.CANCEL
    assert order.accession_number == "FL2001"
    assert order.procedure_code is None


def test_no_accession_anywhere_is_an_application_error() -> None:
    data = m.message(m.msh(), m.pid(), m.orc(filler=""), m.obr(accession="", filler=""))

    rejection = refused(data)

    assert (rejection.ack, rejection.code) == (AckCode.ERROR, ErrorCode.REQUIRED_FIELD_MISSING)


def test_an_nhs_number_is_recognised_by_its_authority_alone() -> None:
    ids = f"{m.NHS_NUMBER[:3]} {m.NHS_NUMBER[3:6]} {m.NHS_NUMBER[6:]}^^^NHS~H55^^^RXA^MR"
    data = m.message(m.msh(), m.pid(identifiers=ids), m.orc(), m.obr())

    (order,) = parse(data).orders

    assert order.nhs_number == m.NHS_NUMBER
    assert order.patient_local_id == "H55"


def test_an_nhs_number_is_recognised_by_its_type_alone() -> None:
    ids = f"H55^^^RXA^MR~{m.NHS_NUMBER}^^^&2.16.840.1.113883.2.1.4.1&ISO^NH"
    (order,) = parse(m.message(m.msh(), m.pid(identifiers=ids), m.orc(), m.obr())).orders

    assert order.nhs_number == m.NHS_NUMBER
    assert order.identifiers[1].authority == "2.16.840.1.113883.2.1.4.1"


def test_the_local_id_is_the_first_identifier_that_is_not_the_nhs_number() -> None:
    ids = f"{m.NHS_NUMBER}^^^NHS^NH~H1^^^RXA^MR~H2^^^RXA^PI"
    (order,) = parse(m.message(m.msh(), m.pid(identifiers=ids), m.orc(), m.obr())).orders

    assert order.patient_local_id == "H1"
    assert len(order.identifiers) == 3


def test_without_an_nhs_number_the_order_still_has_its_local_id() -> None:
    data = m.message(m.msh(), m.pid(identifiers="H1^^^RXA^MR"), m.orc(), m.obr())

    (order,) = parse(data).orders

    assert (order.nhs_number, order.patient_local_id) == (None, "H1")


def test_an_invalid_nhs_number_is_an_application_error() -> None:
    ids = f"H1^^^RXA^MR~{m.INVALID_NHS_NUMBER}^^^NHS^NH"

    rejection = refused(m.message(m.msh(), m.pid(identifiers=ids), m.orc(), m.obr()))

    assert (rejection.ack, rejection.code) == (AckCode.ERROR, ErrorCode.DATA_TYPE)
    assert m.INVALID_NHS_NUMBER not in rejection.text


def test_a_pid_without_identifiers_is_an_application_error() -> None:
    rejection = refused(m.message(m.msh(), m.pid(identifiers=""), m.orc(), m.obr()))

    assert (rejection.ack, rejection.code) == (AckCode.ERROR, ErrorCode.REQUIRED_FIELD_MISSING)


@pytest.mark.parametrize(
    ("segments", "missing"),
    [
        ((m.orc(), m.obr()), "PID"),
        ((m.pid(), m.pv1()), "ORC"),
    ],
)
def test_a_missing_segment_is_an_application_error(segments: tuple[str, ...], missing: str) -> None:
    rejection = refused(m.message(m.msh(), *segments))

    assert (rejection.ack, rejection.code) == (AckCode.ERROR, ErrorCode.SEGMENT_SEQUENCE)
    assert rejection.location is not None
    assert rejection.location.segment == missing


def test_an_omi_group_without_obr_is_an_application_error() -> None:
    data = m.message(m.msh(kind="OMI^O23^OMI_O23", version="2.5.1"), m.pid(), m.orc(), m.tq1("S"))

    assert refused(data).code is ErrorCode.SEGMENT_SEQUENCE


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("ADT^A01^ADT_A01", ErrorCode.UNSUPPORTED_MESSAGE_TYPE),
        ("ORU^R01", ErrorCode.UNSUPPORTED_MESSAGE_TYPE),
        ("ORM^O02", ErrorCode.UNSUPPORTED_EVENT),
        ("OMI^O01", ErrorCode.UNSUPPORTED_EVENT),
        ("", ErrorCode.UNSUPPORTED_MESSAGE_TYPE),
    ],
)
def test_a_wrong_message_type_is_rejected(kind: str, code: ErrorCode) -> None:
    rejection = refused(m.message(m.msh(kind=kind), m.pid(), m.orc(), m.obr()))

    assert (rejection.ack, rejection.code) == (AckCode.REJECT, code)


@pytest.mark.parametrize("version", ["2.2", "2.6", "2.7", ""])
def test_an_unsupported_version_is_rejected(version: str) -> None:
    rejection = refused(m.message(m.msh(version=version), m.pid(), m.orc(), m.obr()))

    assert (rejection.ack, rejection.code) == (AckCode.REJECT, ErrorCode.UNSUPPORTED_VERSION)


def test_a_message_without_control_id_is_rejected() -> None:
    rejection = refused(m.message(m.msh(control_id=""), m.pid(), m.orc(), m.obr()))

    assert (rejection.ack, rejection.code) == (AckCode.REJECT, ErrorCode.REQUIRED_FIELD_MISSING)


@pytest.mark.parametrize("data", [b"", b"PID|1||X", b"hello world", b"MSH"])
def test_something_that_is_not_hl7_is_rejected(data: bytes) -> None:
    assert refused(data).ack is AckCode.REJECT


@pytest.mark.parametrize(
    ("code", "expected"),
    [("S", Priority.STAT), ("A", Priority.URGENT), ("R", Priority.ROUTINE), ("s", Priority.STAT)],
)
def test_the_priority_is_mapped_by_the_configured_map(code: str, expected: Priority) -> None:
    (order,) = parse(m.orm(priority=code)).orders

    assert order.priority is expected


def test_a_priority_code_outside_the_map_is_kept_as_sent_only() -> None:
    (order,) = parse(m.orm(priority="T")).orders

    assert (order.priority, order.ris_priority) == (None, "T")


def test_a_configured_map_changes_the_mapping() -> None:
    custom = parse_priority_map("S=stat,A=urgent,R=routine,C=cancer_pathway,P=inpatient")

    (order,) = parse_order_message(m.orm(priority="C"), priority_map=custom).orders

    assert order.priority is Priority.CANCER_PATHWAY


def test_orc_7_gives_the_priority_when_obr_27_does_not() -> None:
    data = m.message(m.msh(), m.pid(), m.orc(priority="A"), m.obr(priority=""))

    (order,) = parse(data).orders

    assert order.priority is Priority.URGENT


def test_a_national_alternate_procedure_code_is_preferred_to_a_local_one() -> None:
    procedure = "CXR1^Chest PA^L^399208008^Plain chest X-ray^SNM"
    data = m.message(m.msh(), m.pid(), m.orc(), m.obr(procedure=procedure))

    (order,) = parse(data).orders

    assert (order.procedure_code, order.procedure_coding_system, order.procedure_name) == (
        "399208008",
        "SCT",
        "Plain chest X-ray",
    )


def test_a_local_procedure_code_is_kept_when_nothing_national_is_given() -> None:
    data = m.message(m.msh(), m.pid(), m.orc(), m.obr(procedure="CXR1^Chest PA^L"))

    (order,) = parse(data).orders

    assert (order.procedure_code, order.procedure_coding_system) == ("CXR1", "L")


def test_the_referrer_comes_from_obr_16_when_orc_12_is_empty() -> None:
    data = m.message(
        m.msh(),
        m.pid(),
        m.orc(clinician="", organisation="Royal Infirmary^^^^^^^^^RXA01"),
        m.obr(clinician="G7654321^PATEL^ASHA^^^DR"),
    )

    (order,) = parse(data).orders

    assert order.referrer == Referrer(
        name="DR ASHA PATEL",
        code="G7654321",
        organisation="Royal Infirmary",
        organisation_code="RXA01",
    )


@pytest.mark.parametrize(
    ("patient_class", "organisation", "expected"),
    [
        ("E", "A81001", PatientSource.EMERGENCY),
        ("I", "", PatientSource.INPATIENT),
        ("O", "RXA01", PatientSource.OUTPATIENT),
        ("O", "A81001", PatientSource.GP),
        ("", "B82005", PatientSource.GP),
        ("", "RXA", PatientSource.OTHER),
        ("P", "", PatientSource.OTHER),
    ],
)
def test_patient_source_from_the_patient_class_and_the_referring_organisation(
    patient_class: str, organisation: str, expected: PatientSource
) -> None:
    org = f"Somewhere^^^^^^^^^{organisation}" if organisation else ""
    data = m.message(m.msh(), m.pid(), m.pv1(patient_class), m.orc(organisation=org), m.obr())

    (order,) = parse(data).orders

    assert order.patient_source is expected


def test_without_pv1_or_organisation_the_patient_source_is_unsaid() -> None:
    (order,) = parse(m.message(m.msh(), m.pid(), m.orc(organisation=""), m.obr())).orders

    assert order.patient_source is None


def test_a_change_takes_the_request_date_from_obr_6_not_the_transaction_time() -> None:
    data = m.message(
        m.msh(), m.pid(), m.orc("XO", transaction="20260110090000"), m.obr(requested="20260105")
    )

    (order,) = parse(data).orders

    assert order.requested_at == datetime(2026, 1, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20260705101000", datetime(2026, 7, 5, 9, 10, tzinfo=UTC)),  # BST
        ("20260705101000+0000", datetime(2026, 7, 5, 10, 10, tzinfo=UTC)),
        ("202607051010-0500", datetime(2026, 7, 5, 15, 10, tzinfo=UTC)),
        ("20260705101000.25", datetime(2026, 7, 5, 9, 10, 0, 250000, tzinfo=UTC)),
    ],
)
def test_times_without_an_offset_are_english_wall_clock(value: str, expected: datetime) -> None:
    (order,) = parse(m.message(m.msh(), m.pid(), m.orc(transaction=value), m.obr())).orders

    assert order.requested_at == expected


@pytest.mark.parametrize("value", ["2026-07-05", "20261305", "yesterday"])
def test_a_malformed_date_is_an_application_error(value: str) -> None:
    rejection = refused(m.message(m.msh(), m.pid(), m.orc(transaction=value), m.obr()))

    assert (rejection.ack, rejection.code) == (AckCode.ERROR, ErrorCode.DATA_TYPE)


def test_escapes_in_the_indication_are_decoded() -> None:
    data = m.message(
        m.msh(),
        m.pid(),
        m.orc(),
        m.obr(reason="", clinical_info="Pain \\T\\ swelling\\.br\\3 days \\F\\ fever \\X41\\"),
    )

    (order,) = parse(data).orders

    assert order.indication == "Pain & swelling\n3 days | fever A"


def test_latin_1_text_is_decoded_as_msh_18_says() -> None:
    data = (
        "\r".join([m.msh(charset="8859/1"), m.pid(name="BRONTË^ZOË"), m.orc(), m.obr()]) + "\r"
    ).encode("latin-1")

    (order,) = parse(data).orders

    assert order.patient_name == "BRONTË^ZOË"


def test_segments_ended_by_line_feeds_are_read() -> None:
    data = m.orm().replace(b"\r", b"\r\n")

    (order,) = parse(data).orders

    assert order.accession_number == "ACC1001"


def test_each_orc_group_is_an_order() -> None:
    data = m.message(
        m.msh(),
        m.pid(),
        m.pv1("O"),
        m.orc("NW", placer="P1", filler="F1"),
        m.obr(accession="A1", placer="P1", filler="F1"),
        "NTE|1||Patient claustrophobic",
        m.orc("NW", placer="P2", filler="F2"),
        m.obr(accession="A2", placer="P2", filler="F2", procedure="MHEAD^MR Head^NICIP"),
    )

    orders = parse(data).orders

    assert [o.accession_number for o in orders] == ["A1", "A2"]
    assert orders[1].procedure_code == "MHEAD"
    assert orders[0].nhs_number == orders[1].nhs_number == m.NHS_NUMBER


def test_obr_before_orc_is_a_segment_sequence_error() -> None:
    data = m.message(m.msh(), m.pid(), m.obr(), m.orc())

    assert refused(data).code is ErrorCode.SEGMENT_SEQUENCE


def test_a_message_cut_short_before_its_order_is_an_application_error() -> None:
    whole = m.orm()
    cut = whole[: whole.index(b"ORC|") + 2]

    rejection = refused(cut)

    assert (rejection.ack, rejection.code) == (AckCode.ERROR, ErrorCode.SEGMENT_SEQUENCE)
