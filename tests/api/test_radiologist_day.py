"""A radiologist's day over HTTP: log in, take the next case, draft, sign, add, all audited."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import (
    NORTH,
    SOUTH,
    T0,
    add_patient,
    add_site,
    add_study,
    add_user,
    token_headers,
)
from worklist.enums import Priority, Role


def test_one_radiologists_day(client: TestClient, db: sessionmaker[Session]) -> None:
    with db() as session, session.begin():
        north, south = add_site(session, NORTH), add_site(session, SOUTH)
        add_user(session, "dr.day", Role.RADIOLOGIST, NORTH, SOUTH)
        add_user(session, "auditor", Role.ADMIN)
        routine = add_study(session, add_patient(session, north), received_at=T0)
        urgent = add_study(
            session,
            add_patient(session, south, nhs_number="9434765919"),
            priority=Priority.URGENT,
            received_at=T0 + timedelta(minutes=5),
            due_at=T0 + timedelta(hours=4),
        )
        routine_uid, urgent_uid = routine.study_uid, urgent.study_uid

    me = token_headers(client, "dr.day")

    listed = client.get("/api/v1/worklist", headers=me).json()["items"]
    assert [item["study_uid"] for item in listed] == [urgent_uid, routine_uid]

    taken = client.post("/api/v1/worklist/next", headers=me)
    assert taken.status_code == 200
    assert taken.json()["study"]["study_uid"] == urgent_uid
    assert taken.json()["claim"]["username"] == "dr.day"
    mine = client.get("/api/v1/worklist?mine=true", headers=me).json()["items"]
    assert [item["study_uid"] for item in mine] == [urgent_uid]

    detail = client.get(f"/api/v1/studies/{urgent_uid}", headers=me)
    assert detail.status_code == 200

    draft = client.put(
        f"/api/v1/studies/{urgent_uid}/report", headers=me, json={"text": "Small left effusion."}
    )
    assert draft.status_code == 200
    version = draft.json()["version"]
    second = client.put(
        f"/api/v1/studies/{urgent_uid}/report",
        headers={**me, "If-Match": f'"{version}"'},
        json={"text": "Small left pleural effusion. No consolidation."},
    )
    assert second.status_code == 200
    signed = client.post(
        f"/api/v1/studies/{urgent_uid}/report/finalise",
        headers=me,
        json={"version": second.json()["version"]},
    )
    assert signed.status_code == 200
    assert signed.json()["status"] == "final"
    assert client.get(f"/api/v1/studies/{urgent_uid}", headers=me).json()["status"] == "reported"
    assert client.get("/api/v1/worklist?mine=true", headers=me).json()["items"] == []

    addendum = client.post(
        f"/api/v1/studies/{urgent_uid}/report/addenda",
        headers=me,
        json={"text": "Compared with prior: new since last year."},
    )
    assert addendum.status_code == 201
    report = client.get(f"/api/v1/studies/{urgent_uid}/report", headers=me).json()
    assert report["status"] == "amended"
    assert report["text"] == "Small left pleural effusion. No consolidation."
    assert [a["text"] for a in report["addenda"]] == ["Compared with prior: new since last year."]

    nxt = client.post("/api/v1/worklist/next", headers=me)
    assert nxt.json()["study"]["study_uid"] == routine_uid

    audit = client.get(
        f"/api/v1/audit?study_uid={urgent_uid}&username=dr.day&limit=200",
        headers=token_headers(client, "auditor"),
    )
    assert audit.status_code == 200
    actions = [row["action"] for row in reversed(audit.json()["items"])]
    for expected in (
        "claim.created",
        "study.view",
        "report.saved",
        "report.finalised",
        "report.addendum",
        "report.view",
    ):
        assert expected in actions, (expected, actions)
    assert actions.index("claim.created") < actions.index("report.saved")
    assert actions.index("report.saved") < actions.index("report.finalised")
    assert actions.index("report.finalised") < actions.index("report.addendum")
