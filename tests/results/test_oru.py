"""What the RIS receives: an ORU^R01 v2.5.1 per finalised or amended report."""

from __future__ import annotations

import json
from datetime import datetime

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.fhir.conftest import (
    ACCESSION,
    ADDENDUM_TEXT,
    LOCAL_ID,
    NHS_NUMBER,
    READER_GMC,
    SIGNED_TEXT,
    STUDY_DATETIME,
    Result,
    make_result,
    messages,
)
from tests.results.conftest import (
    FILLER,
    PLACER,
    PROCEDURE_CODE,
    PROCEDURE_NAME,
    RIS_AUTHORITY,
    dispatch_once,
    point_at,
)
from tests.results.receiver import MllpReceiver
from tests.results.validation import assert_valid_oru, field, report_text, segments
from worklist.config import Settings
from worklist.models import Hl7Sender, Site
from worklist.results import er7
from worklist.results.oru import MAX_FT_LENGTH
from worklist.timezones import SITE_TIMEZONE


def hl7_time(value: str) -> str:
    """An API / FHIR timestamp as the ORU sends it (London time, to the second)."""
    return er7.timestamp(datetime.fromisoformat(value))


def test_a_final_report_goes_to_the_ris_as_a_valid_oru_with_status_f(
    result: Result, ris: MllpReceiver, fast: Settings, db: sessionmaker[Session]
) -> None:
    signed = result.sign()

    assert dispatch_once(fast) == 1

    [received] = ris.wait_for(1)
    message = assert_valid_oru(received.text)
    [outbox_message] = messages(db)
    with db() as session:
        facility_site = session.scalars(select(Site).where(Site.code == "TRUSTA")).one()
    # MSH: us to the trust's RIS, one control id per outbox message, UTF-8.
    assert field(message, "MSH.F3") == "WORKLIST"
    assert field(message, "MSH.F4") == fast.gateway_ae_title
    assert field(message, "MSH.F6") == facility_site.code  # no HL7 facility registered
    assert field(message, "MSH.F9") == "ORU^R01^ORU_R01"
    assert received.control_id == outbox_message.webhook_id.removeprefix("msg_")[:20]
    assert field(message, "MSH.F12") == "2.5.1"
    assert field(message, "MSH.F18") == "UNICODE UTF-8"
    # PID: the local id under the authority the RIS's order used, and the NHS number.
    assert field(message, "PID.F3.R1.C1") == LOCAL_ID
    assert field(message, "PID.F3.R1.C4") == RIS_AUTHORITY
    assert field(message, "PID.F3.R1.C5") == "MR"
    assert field(message, "PID.F3") == f"{LOCAL_ID}^^^{RIS_AUTHORITY}^MR~{NHS_NUMBER}^^^NHS^NH"
    assert field(message, "PID.F5") == "SMITH^JOHN^PETER^^MR"
    assert field(message, "PID.F7") == "19480302"
    assert field(message, "PID.F8") == "M"
    assert field(message, "PV1.F2") == "E"
    # ORC/OBR: the order's numbers, the accession, the procedure, the times, the signer.
    assert field(message, "ORC.F1") == "RE"
    assert (field(message, "ORC.F2"), field(message, "ORC.F3")) == (PLACER, FILLER)
    assert (field(message, "OBR.F2"), field(message, "OBR.F3")) == (PLACER, FILLER)
    assert field(message, "OBR.F4") == f"{PROCEDURE_CODE}^{PROCEDURE_NAME}^NICIP"
    assert field(message, "OBR.F7") == er7.timestamp(STUDY_DATETIME)
    assert field(message, "OBR.F7").endswith("+0000")  # January: GMT
    assert field(message, "OBR.F18") == ACCESSION
    assert field(message, "OBR.F22") == hl7_time(signed["finalised_at"])
    assert field(message, "OBR.F25") == "F"
    assert field(message, "OBR.F32") == f"{READER_GMC}&Reader&Bea&&&Dr&&&GMC"
    [obx] = message.segments("OBX")
    assert (str(obx[2]), str(obx[11])) == ("FT", "F")
    assert report_text(message) == SIGNED_TEXT


def test_an_addendum_goes_as_a_corrected_result_with_the_whole_text(
    result: Result, ris: MllpReceiver, fast: Settings, db: sessionmaker[Session]
) -> None:
    result.sign()
    assert dispatch_once(fast) == 1
    amended = result.amend()

    assert dispatch_once(fast) == 1

    final, corrected = (assert_valid_oru(r.text) for r in ris.wait_for(2))
    assert field(final, "OBR.F25") == "F"
    assert field(corrected, "OBR.F25") == "C"
    assert {str(obx[11]) for obx in corrected.segments("OBX")} == {"C"}
    text = report_text(corrected)
    assert text.startswith(SIGNED_TEXT)
    assert text.endswith(ADDENDUM_TEXT)
    assert "ADDENDUM 1" in text
    assert field(corrected, "OBR.F22") == hl7_time(amended["addenda"][-1]["created_at"])
    # The same order, a new message.
    assert field(corrected, "OBR.F2") == PLACER
    assert field(final, "MSH.F10") != field(corrected, "MSH.F10")
    assert json.loads(messages(db)[1].body)["data"]["report"]["status"] == "amended"


def test_line_breaks_and_delimiters_in_the_report_round_trip(
    result: Result, ris: MllpReceiver, fast: Settings
) -> None:
    report = (
        "FINDINGS:\n"
        "  Pipes | carets ^ tildes ~ backslashes \\ ampersands & all survive.\r\n"
        "\n"
        "A literal \\.br\\ and \\F\\ stay as typed.\tTabbed.\n"
        "Size 12 \u00d7 9 mm, 3\u20134 \u00b5Sv, \u00c5ngstr\u00f6m, na\u00efve caf\u00e9.\n"
        "IMPRESSION: no acute abnormality"
    )
    result.sign(report)

    assert dispatch_once(fast) == 1

    [received] = ris.wait_for(1)
    message = assert_valid_oru(received.text)
    assert report_text(message) == report.replace("\r\n", "\n")
    obx_fields = [fields for fields in segments(received.text) if fields[0] == "OBX"]
    assert len(obx_fields) == 1
    assert "\\.br\\" in obx_fields[0][5]


def test_a_report_longer_than_an_ft_field_is_sent_whole_across_obx_segments(
    result: Result, ris: MllpReceiver, fast: Settings
) -> None:
    line = "Extensive bilateral findings described in full, line after line | ^ & ~."
    report = "\n".join(f"{n:05d} {line}" for n in range(1, 1001))
    assert len(report) > MAX_FT_LENGTH
    result.sign(report)

    assert dispatch_once(fast) == 1

    [received] = ris.wait_for(1)
    message = assert_valid_oru(received.text)
    assert len(message.segments("OBX")) >= 2
    assert report_text(message) == report


def test_without_an_order_the_accession_identifies_the_result(
    client: TestClient, db: sessionmaker[Session], fast: Settings, ris: MllpReceiver
) -> None:
    made = make_result(client, db, fast, None)
    point_at(db, ris.port)
    made.sign()

    assert dispatch_once(fast) == 1

    [received] = ris.wait_for(1)
    message = assert_valid_oru(received.text)
    assert [str(s[0]) for s in message] == ["MSH", "PID", "ORC", "OBR", "OBX"]  # no PV1
    assert field(message, "OBR.F2") == ""
    assert field(message, "OBR.F3") == ACCESSION
    assert field(message, "OBR.F18") == ACCESSION
    assert field(message, "OBR.F4") == "^CT HEAD WITHOUT CONTRAST"
    # The local id under the site's own code when no order named an authority.
    assert field(message, "PID.F3") == f"{LOCAL_ID}^^^TRUSTA^MR~{NHS_NUMBER}^^^NHS^NH"


def test_times_are_london_wall_clock_with_their_offset(
    result: Result, ris: MllpReceiver, fast: Settings
) -> None:
    signed = result.sign()

    assert dispatch_once(fast) == 1

    message = assert_valid_oru(ris.wait_for(1)[0].text)
    sent = field(message, "OBR.F22")
    finalised = datetime.fromisoformat(signed["finalised_at"]).astimezone(SITE_TIMEZONE)
    assert sent == finalised.strftime("%Y%m%d%H%M%S%z")


def test_the_receiving_facility_is_the_one_the_trusts_ris_sends_from(
    result: Result, ris: MllpReceiver, fast: Settings, db: sessionmaker[Session]
) -> None:
    with db() as session, session.begin():
        site = session.scalars(select(Site).where(Site.code == "TRUSTA")).one()
        session.add_all([Hl7Sender(facility="RXA_RIS", site_id=site.id)])
    result.sign()

    assert dispatch_once(fast) == 1

    message = assert_valid_oru(ris.wait_for(1)[0].text)
    assert field(message, "MSH.F6") == "RXA_RIS"
