"""Blinding: until they submit, a second reader cannot learn the first report -- not over
REST (the report, its FHIR view, the prior-report route, the study's detail), nor DICOMweb,
nor the event stream."""

from __future__ import annotations

import pytest

from tests.doubleread.conftest import (
    FIRST,
    FIRST_REPORT,
    MANAGER,
    SECOND,
    THIRD,
    VISITOR,
    Network,
)


def _claimed(
    network: Network, reader: str = SECOND, *, other_trust: bool = False
) -> tuple[str, int]:
    network.set_rules({"share": 1, "other_trust": other_trust})
    uid = network.add_study()
    network.report(uid)
    read_id = network.read_of(uid)
    assert network.claim(reader, read_id).status_code == 200
    return uid, read_id


def _leaks(text: str) -> bool:
    return FIRST_REPORT in text or FIRST in text


@pytest.mark.parametrize(("reader", "other_trust"), [(SECOND, False), (VISITOR, True)])
def test_the_holder_gets_404_for_the_report_and_its_fhir_view_until_they_submit(
    network: Network, reader: str, other_trust: bool
) -> None:
    uid, read_id = _claimed(network, reader, other_trust=other_trust)
    report, fhir = f"/api/v1/studies/{uid}/report", f"/api/v1/studies/{uid}/report/fhir"
    assert network.send("GET", reader, report).status_code == 404
    assert network.send("GET", reader, fhir).status_code == 404
    # Everyone else who may read it still does.
    assert network.send("GET", FIRST, report).json()["text"] == FIRST_REPORT
    assert network.send("GET", MANAGER, report).status_code == 200
    assert network.send("GET", THIRD, fhir).status_code == 200

    claimed = network.send("GET", reader, f"/api/v1/double-reads/{read_id}").json()
    assert claimed["first_report"] is None
    assert claimed["first_reader"] is None

    submitted = network.submit(reader, read_id, "1")
    assert submitted.status_code == 200
    # Submitted: the first report is the reader's to compare, on their read...
    assert submitted.json()["first_report"]["text"] == FIRST_REPORT
    assert submitted.json()["first_report"]["author"] == FIRST
    if other_trust:  # ...and no more of the study: the grant ended with the read
        assert network.send("GET", reader, report).status_code == 404
    else:  # ...and through the study, as any colleague at the site
        assert network.send("GET", reader, report).json()["text"] == FIRST_REPORT
        assert network.send("GET", reader, fhir).status_code == 200


def test_the_study_detail_shows_the_holder_no_report_text_or_author(network: Network) -> None:
    uid, _ = _claimed(network, VISITOR, other_trust=True)
    detail = network.send("GET", VISITOR, f"/api/v1/studies/{uid}")
    assert detail.status_code == 200
    assert not _leaks(detail.text)


def test_the_prior_report_route_is_closed_to_the_holder(network: Network) -> None:
    uid, read_id = _claimed(network)
    later = network.add_study(patient_of=uid)  # a newer study lists uid as its prior
    prior = f"/api/v1/studies/{later}/priors/{uid}/report"
    assert network.send("GET", SECOND, prior).status_code == 404
    assert network.send("GET", THIRD, prior).status_code == 200
    assert network.submit(SECOND, read_id, "1").status_code == 200
    assert network.send("GET", SECOND, prior).json()["text"] == FIRST_REPORT


def test_dicomweb_serves_the_holder_the_images_and_nothing_of_the_report(
    network: Network,
) -> None:
    # The worklist keeps its reports out of DICOMweb (no SR is written): the images'
    # QIDO-RS answers carry neither the first report's text nor its author.
    uid, _ = _claimed(network, VISITOR, other_trust=True)
    studies = network.send("GET", VISITOR, "/dicomweb/studies", params={"StudyInstanceUID": uid})
    assert studies.status_code == 200, studies.text
    [study] = studies.json()
    assert study["0020000D"]["Value"] == [uid]
    series = network.send("GET", VISITOR, f"/dicomweb/studies/{uid}/series")
    assert series.status_code == 200
    assert len(series.json()) == 1
    assert not _leaks(studies.text)
    assert not _leaks(series.text)
    modalities = {s["00080060"]["Value"][0] for s in series.json()}
    assert "SR" not in modalities
