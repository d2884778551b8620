"""A study flagged demographic_mismatch by the index shows it, and what its images carry."""

from __future__ import annotations

from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.indexer import IndexRequest, SiteRef, index_batch
from dicom_gateway.parse import InstanceHeader
from tests.api.conftest import NORTH, add_user, bearer
from worklist.config import Settings
from worklist.enums import Role
from worklist.models import Site
from worklist.synthetic import new_uid

CT = "1.2.840.10008.5.1.4.1.1.2"


def _index(
    db: sessionmaker[Session], settings: Settings, site: Site, name: str, birth: date
) -> str:
    """Index one instance of a new study through index_instances, as the gateway does."""
    study_uid, series_uid, sop_uid = new_uid(), new_uid(), new_uid()
    header = InstanceHeader(
        sop_class_uid=CT,
        sop_instance_uid=sop_uid,
        study_uid=study_uid,
        series_uid=series_uid,
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        modality="CT",
        patient_name=name,
        patient_id="MRN-42",
        nhs_number=None,
        birth_date=birth,
        sex="F",
        accession_number=None,
        study_description=None,
        series_description=None,
        study_datetime=None,
        series_number=1,
        instance_number=1,
        requested_priority=None,
    )
    request = IndexRequest(
        header=header,
        site=SiteRef(id=site.id, code=site.code, default_priority=None),
        path=f"{site.code}/{study_uid}/{sop_uid}.dcm",
        size_bytes=1,
        actor="NORTH_PACS",
        address="127.0.0.1",
    )
    with db() as session, session.begin():
        index_batch(session, [request], turnaround=settings.turnaround_targets)
    return study_uid


def test_worklist_and_detail_show_the_mismatch_and_the_received_demographics(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], settings: Settings
) -> None:
    with db() as session, session.begin():
        headers = bearer(settings, add_user(session, "admin", Role.ADMIN))
    first = _index(db, settings, sites[NORTH], "DOE^JANE", date(1970, 1, 1))
    second = _index(db, settings, sites[NORTH], "ROE^JANE", date(1970, 1, 1))

    response = client.get("/api/v1/worklist?status=receiving", headers=headers)
    assert response.status_code == 200, response.text
    items = {item["study_uid"]: item for item in response.json()["items"]}
    assert items[first]["flags"] == ["no_order"]
    assert items[second]["flags"] == ["demographic_mismatch", "no_order"]
    assert items[second]["patient"]["name"] == "DOE^JANE"

    flagged = client.get(f"/api/v1/studies/{second}", headers=headers).json()
    assert flagged["received_patient"] == {
        "name": "ROE^JANE",
        "birth_date": "1970-01-01",
        "sex": "F",
    }
    assert (
        client.get(f"/api/v1/studies/{first}", headers=headers).json()["received_patient"] is None
    )
