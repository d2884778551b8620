"""C-FIND on the gateway: Study Root levels, matching, visibility by node grants, audit."""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.gateway.qr.conftest import (
    GATEWAY_AE,
    ROGUE_AE,
    WORKSTATION_AE,
    Network,
    c_find,
    dcmtk,
    grant,
    identifier,
)
from worklist.enums import AuditAction
from worklist.models import AuditEvent


def _findscu(
    network: Network, out: Path, *keys: str, calling_ae: str = WORKSTATION_AE
) -> list[Dataset]:
    out.mkdir(exist_ok=True)
    args: list[str] = ["/usr/bin/findscu", "-S", "-X", "-od", str(out)]
    args += ["-aet", calling_ae, "-aec", GATEWAY_AE]
    for key in keys:
        args += ["-k", key]
    result = dcmtk(*args, "127.0.0.1", str(network.gateway.port))
    assert result.returncode == 0, result.stderr
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


STUDY_KEYS = (
    "QueryRetrieveLevel=STUDY",
    "StudyInstanceUID=",
    "PatientName=",
    "PatientID=",
    "StudyDate=",
    "AccessionNumber=",
    "ModalitiesInStudy=",
    "NumberOfStudyRelatedInstances=",
    "NumberOfStudyRelatedSeries=",
    "StudyDescription=",
)


def test_findscu_finds_another_trusts_study_only_after_node_grant(
    network: Network, db: sessionmaker[Session], tmp_path: Path
) -> None:
    before = _findscu(network, tmp_path / "before", *STUDY_KEYS)
    assert [str(ds.StudyInstanceUID) for ds in before] == [network.study_b.study_uid]

    grant(db, WORKSTATION_AE, "RXA")
    after = _findscu(network, tmp_path / "after", *STUDY_KEYS)
    by_uid = {str(ds.StudyInstanceUID): ds for ds in after}
    assert set(by_uid) == {network.study_a.study_uid, network.study_b.study_uid}
    a = by_uid[network.study_a.study_uid]
    assert a.SpecificCharacterSet == "ISO_IR 192"
    assert str(a.PatientName) == "Müller^Jürgen"
    assert a.PatientID == "A-100"
    assert a.StudyDate == "20261103"
    assert a.AccessionNumber == "ACC-A1"
    assert list(a.ModalitiesInStudy) == ["CT", "MR"]
    assert int(a.NumberOfStudyRelatedInstances) == 5
    assert int(a.NumberOfStudyRelatedSeries) == 2
    assert a.StudyDescription == "CT and MR head"
    assert a.QueryRetrieveLevel == "STUDY"


def test_ungranted_node_of_another_trust_finds_nothing(network: Network, tmp_path: Path) -> None:
    found = _findscu(network, tmp_path / "rogue", *STUDY_KEYS, calling_ae=ROGUE_AE)
    assert found == []
    everything = c_find(
        network.gateway.port, identifier("IMAGE", SOPInstanceUID=""), calling_ae=ROGUE_AE
    )
    assert everything == []


def test_study_matching_on_name_wildcards_ids_dates_and_modalities(
    network: Network, db: sessionmaker[Session]
) -> None:
    grant(db, WORKSTATION_AE, "RXA")
    port = network.gateway.port
    a, b = network.study_a.study_uid, network.study_b.study_uid

    def uids(**keys: object) -> set[str]:
        return {str(ds.StudyInstanceUID) for ds in c_find(port, identifier("STUDY", **keys))}

    assert uids(PatientName="müll*") == {a}
    assert uids(PatientName="smith^anna") == {b}
    assert uids(PatientName="SM?TH*") == {b}
    assert uids(PatientName="*") == {a, b}
    assert uids(PatientName="M%") == set()
    assert uids(PatientID="B-200") == {b}
    assert uids(AccessionNumber="ACC-A*") == {a}
    assert uids(StudyDate="20261101-20261130") == {a}
    assert uids(StudyDate="-20261031") == {b}
    assert uids(StudyDate="20261020") == {b}
    assert uids(StudyInstanceUID=[a, b]) == {a, b}
    assert uids(ModalitiesInStudy=["MR", "US"]) == {a}
    assert uids(ModalitiesInStudy="CR") == {b}


def test_series_and_image_level_queries(network: Network, db: sessionmaker[Session]) -> None:
    grant(db, WORKSTATION_AE, "RXA")
    port = network.gateway.port
    spec = network.study_a
    series = c_find(
        port,
        identifier(
            "SERIES",
            StudyInstanceUID=spec.study_uid,
            SeriesInstanceUID="",
            Modality="",
            SeriesDescription="",
            SeriesNumber="",
            NumberOfSeriesRelatedInstances="",
        ),
    )
    assert [(s.SeriesInstanceUID, s.Modality, s.SeriesNumber) for s in series] == [
        (spec.series[0].series_uid, "CT", 1),
        (spec.series[1].series_uid, "MR", 2),
    ]
    assert [int(s.NumberOfSeriesRelatedInstances) for s in series] == [3, 2]
    assert series[0].SeriesDescription == "Axial"
    assert all(s.QueryRetrieveLevel == "SERIES" for s in series)

    mr = c_find(port, identifier("SERIES", StudyInstanceUID=spec.study_uid, Modality="MR"))
    assert [s.SeriesInstanceUID for s in mr] == [spec.series[1].series_uid]

    images = c_find(
        port,
        identifier(
            "IMAGE",
            StudyInstanceUID=spec.study_uid,
            SeriesInstanceUID=spec.series[0].series_uid,
            SOPInstanceUID="",
            SOPClassUID="",
            InstanceNumber="",
        ),
    )
    assert [int(i.InstanceNumber) for i in images] == [1, 2, 3]
    assert {i.SOPClassUID for i in images} == {"1.2.840.10008.5.1.4.1.1.2"}
    assert {str(i.SOPInstanceUID) for i in images} <= set(network.files)
    one = str(images[1].SOPInstanceUID)
    single = c_find(port, identifier("IMAGE", SOPInstanceUID=one, PatientName=""))
    assert [(str(i.SOPInstanceUID), str(i.PatientName)) for i in single] == [(one, "Müller^Jürgen")]


def test_queries_returning_patient_data_are_audited_with_matched_studies(
    network: Network, db: sessionmaker[Session]
) -> None:
    port = network.gateway.port
    c_find(port, identifier("STUDY", PatientName="*", StudyInstanceUID=""))
    c_find(port, identifier("STUDY", PatientName="NOBODY"))
    with db() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.action == AuditAction.STUDY_QUERIED)
        ).all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.actor, row.actor_kind, row.address) == (WORKSTATION_AE, "node", "127.0.0.1")
    assert row.study_uid == network.study_b.study_uid
    assert row.detail["study_uids"] == [network.study_b.study_uid]
    assert row.detail["level"] == "STUDY"


def test_bad_level_is_refused_with_identifier_status(network: Network) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelFind as Find,
    )

    ae = AE(ae_title=WORKSTATION_AE)
    ae.add_requested_context(Find)
    assoc = ae.associate("127.0.0.1", network.gateway.port, ae_title=GATEWAY_AE)
    try:
        statuses = [int(r.Status) for r, _ in assoc.send_c_find(identifier("PATIENT"), Find)]
    finally:
        assoc.release()
    assert statuses == [0xA900]


def test_findscu_returns_the_site_code_as_issuer_of_patient_id(
    network: Network, tmp_path: Path
) -> None:
    found = _findscu(network, tmp_path / "issuer", *STUDY_KEYS, "IssuerOfPatientID=")
    assert [(ds.PatientID, ds.IssuerOfPatientID) for ds in found] == [("B-200", "RXB")]


def test_issuer_of_patient_id_is_filled_at_every_level_and_matches(
    network: Network, db: sessionmaker[Session]
) -> None:
    grant(db, WORKSTATION_AE, "RXA")
    port = network.gateway.port
    spec = network.study_a
    for level, keys in (
        ("STUDY", {}),
        ("SERIES", {"SeriesInstanceUID": ""}),
        ("IMAGE", {"SeriesInstanceUID": spec.series[0].series_uid, "SOPInstanceUID": ""}),
    ):
        found = c_find(
            port,
            identifier(level, StudyInstanceUID=spec.study_uid, IssuerOfPatientID="", **keys),
        )
        assert found, level
        assert {ds.IssuerOfPatientID for ds in found} == {"RXA"}, level

    def uids(**keys: object) -> set[str]:
        return {str(ds.StudyInstanceUID) for ds in c_find(port, identifier("STUDY", **keys))}

    assert uids(IssuerOfPatientID="RXB") == {network.study_b.study_uid}
    assert uids(IssuerOfPatientID="RX*") == {spec.study_uid, network.study_b.study_uid}
    assert uids(IssuerOfPatientID="RXZ") == set()


def test_malformed_key_is_refused_naming_the_key_not_quoting_python(network: Network) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelFind as Find,
    )

    ae = AE(ae_title=WORKSTATION_AE)
    ae.add_requested_context(Find)
    assoc = ae.associate("127.0.0.1", network.gateway.port, ae_title=GATEWAY_AE)
    try:
        responses = [r for r, _ in assoc.send_c_find(identifier("STUDY", StudyDate="2026x"), Find)]
    finally:
        assoc.release()
    assert [int(r.Status) for r in responses] == [0xC000]
    assert responses[0].ErrorComment == "StudyDate has an invalid value"
