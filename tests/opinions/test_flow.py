"""Second opinions through the API: ask, queue, take, answer, withdraw, and what they leave."""

from __future__ import annotations

import json

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, audit_rows
from tests.events.conftest import stream_entries
from tests.opinions.conftest import QUESTION, Network, ask, asked, opinion_row, study_flags
from worklist.enums import AuditAction, StudyFlag
from worklist.events import EventType
from worklist.models import Site, StudyGrant

QUEUE = "/api/v1/second-opinions"


def _events(redis_url: str) -> list[dict[str, str]]:
    client = redis.Redis.from_url(redis_url)
    try:
        return [fields for _, fields in stream_entries(client)]
    finally:
        client.close()


def _grants(db: sessionmaker[Session]) -> list[tuple[int, str, int]]:
    with db() as session:
        stmt = select(StudyGrant.user_id, StudyGrant.reason, StudyGrant.reason_id)
        return [tuple(row) for row in session.execute(stmt)]


def _queue_ids(client: TestClient, headers: dict[str, str], **params: object) -> list[int]:
    response = client.get(QUEUE, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_a_specialist_at_another_trust_takes_and_answers_and_the_requester_is_told(
    client: TestClient,
    network: Network,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    redis_url: str,
) -> None:
    created = ask(client, network["asker"], network.study_uid, subspecialty="neuro")
    assert created.status_code == 201, created.text
    body = created.json()
    opinion_id = body["id"]
    assert body == {
        "id": opinion_id,
        "study_uid": network.study_uid,
        "status": "open",
        "question": QUESTION,
        "subspecialty": "neuro",
        "radiologist": None,
        "urgency": "routine",
        "requested_by": "asker",
        "claimed_by": None,
        "answer": None,
        "created_at": body["created_at"],
        "study": {
            "site": {"code": NORTH, "name": sites[NORTH].name},
            "modalities": ["MR"],
            "description": "MR HEAD",
        },
    }
    # Who matches the subspecialty sees it; who does not, does not.
    assert _queue_ids(client, network["neuro_south"]) == [opinion_id]
    assert _queue_ids(client, network["chest_south"]) == []
    assert _queue_ids(client, network["colleague"]) == []
    assert _queue_ids(client, network["asker"]) == [opinion_id]

    taken = client.post(f"{QUEUE}/{opinion_id}/claim", headers=network["neuro_south"])
    assert taken.status_code == 200, taken.text
    assert (taken.json()["status"], taken.json()["claimed_by"]) == ("claimed", "neuro_south")
    assert _grants(db) == [(network.ids["neuro_south"], "second_opinion", opinion_id)]

    answered = client.post(
        f"{QUEUE}/{opinion_id}/answer",
        json={"agreement": "agree", "text": "Agree: acute left MCA infarct."},
        headers=network["neuro_south"],
    )
    assert answered.status_code == 200, answered.text
    answer = answered.json()
    assert answer["status"] == "answered"
    assert answer["answer"]["agreement"] == "agree"
    assert answer["answer"]["text"] == "Agree: acute left MCA infarct."
    assert _grants(db) == []
    assert study_flags(db, network.study_uid) == []

    events = [e for e in _events(redis_url) if e["type"].startswith("second_opinion.")]
    assert [e["type"] for e in events] == [
        EventType.SECOND_OPINION_REQUESTED,
        EventType.SECOND_OPINION_CLAIMED,
        EventType.SECOND_OPINION_ANSWERED,
    ]
    assert {int(e["site_id"]) for e in events} == {sites[NORTH].id}
    told = json.loads(events[-1]["data"])
    assert told["requested_by"] == "asker"
    assert (told["agreement"], told["claimed_by"]) == ("agree", "neuro_south")

    detail = client.get(f"/api/v1/studies/{network.study_uid}", headers=network["asker"])
    assert detail.status_code == 200, detail.text
    [shown] = detail.json()["second_opinions"]
    assert shown["id"] == opinion_id
    assert (shown["status"], shown["agreement"], shown["claimed_by"]) == (
        "answered",
        "agree",
        "neuro_south",
    )

    for action, actor in [
        (AuditAction.SECOND_OPINION_REQUESTED, "asker"),
        (AuditAction.SECOND_OPINION_CLAIMED, "neuro_south"),
        (AuditAction.SECOND_OPINION_ANSWERED, "neuro_south"),
    ]:
        [row] = audit_rows(db, action)
        assert (row.actor, row.study_uid) == (actor, network.study_uid)
        assert row.detail["second_opinion"] == opinion_id
        assert QUESTION not in json.dumps(row.detail)


def test_the_reports_author_may_ask_about_a_reported_study(
    client: TestClient, network: Network
) -> None:
    response = ask(client, network["author"], network.reported_uid, urgency="urgent")

    assert response.status_code == 201, response.text
    assert response.json()["requested_by"] == "author"


def test_a_named_radiologist_is_the_only_one_who_may_take_it(
    client: TestClient, network: Network
) -> None:
    opinion_id = asked(client, network["asker"], network.study_uid, radiologist="chest_south")

    assert _queue_ids(client, network["chest_south"]) == [opinion_id]
    assert _queue_ids(client, network["neuro_south"]) == []
    claim = f"{QUEUE}/{opinion_id}/claim"
    assert client.post(claim, headers=network["neuro_south"]).status_code == 404
    # A colleague at the study's site sees the study, so its requests, but may not take it.
    assert client.get(f"{QUEUE}/{opinion_id}", headers=network["colleague"]).status_code == 200
    assert client.post(claim, headers=network["colleague"]).status_code == 403
    assert client.post(claim, headers=network["chest_south"]).status_code == 200


def test_a_request_for_no_one_in_particular_is_open_to_every_radiologist_but_the_requester(
    client: TestClient, network: Network
) -> None:
    opinion_id = asked(client, network["asker"], network.study_uid)

    for name in ("colleague", "neuro_south", "chest_south", "author"):
        assert _queue_ids(client, network[name]) == [opinion_id], name
    own = client.post(f"{QUEUE}/{opinion_id}/claim", headers=network["asker"])
    assert own.status_code == 403
    assert client.post(f"{QUEUE}/next", headers=network["asker"]).status_code == 204


def test_next_hands_out_urgent_first_then_oldest_then_nothing(
    client: TestClient, network: Network
) -> None:
    older = asked(client, network["asker"], network.study_uid)
    urgent = asked(client, network["asker"], network.study_uid, urgency="urgent")
    newer = asked(client, network["author"], network.reported_uid)

    taken = [client.post(f"{QUEUE}/next", headers=network["neuro_south"]) for _ in range(4)]

    assert [r.status_code for r in taken] == [200, 200, 200, 204]
    assert [r.json()["id"] for r in taken[:3]] == [urgent, older, newer]
    assert taken[3].content == b""
    assert {r.json()["claimed_by"] for r in taken[:3]} == {"neuro_south"}


def test_claiming_again_as_the_holder_changes_nothing_and_another_taker_gets_409(
    client: TestClient, network: Network, db: sessionmaker[Session]
) -> None:
    opinion_id = asked(client, network["asker"], network.study_uid)
    claim = f"{QUEUE}/{opinion_id}/claim"
    first = client.post(claim, headers=network["neuro_south"])

    again = client.post(claim, headers=network["neuro_south"])
    other = client.post(claim, headers=network["chest_south"])

    assert again.status_code == 200
    assert again.json() == first.json()
    assert other.status_code == 409
    assert other.json()["claimed_by"] == "neuro_south"
    assert other.json()["status"] == "claimed"
    assert len(audit_rows(db, AuditAction.SECOND_OPINION_CLAIMED)) == 1


def test_a_major_discrepancy_flags_a_signed_study_until_the_next_addendum(
    client: TestClient, network: Network, db: sessionmaker[Session]
) -> None:
    opinion_id = asked(client, network["author"], network.reported_uid)
    client.post(f"{QUEUE}/{opinion_id}/claim", headers=network["neuro_south"])

    answered = client.post(
        f"{QUEUE}/{opinion_id}/answer",
        json={"agreement": "major_discrepancy", "text": "Missed 9 mm left upper lobe nodule."},
        headers=network["neuro_south"],
    )

    assert answered.status_code == 200, answered.text
    assert study_flags(db, network.reported_uid) == [StudyFlag.MAJOR_DISCREPANCY]
    [row] = audit_rows(db, AuditAction.SECOND_OPINION_ANSWERED)
    assert row.detail["study_flagged"] is True
    detail = client.get(f"/api/v1/studies/{network.reported_uid}", headers=network["author"])
    assert StudyFlag.MAJOR_DISCREPANCY in detail.json()["flags"]

    addendum = client.post(
        f"/api/v1/studies/{network.reported_uid}/report/addenda",
        json={"text": "Addendum: 9 mm LUL nodule; CT follow-up in 3 months."},
        headers=network["author"],
    )

    assert addendum.status_code in (200, 201), addendum.text
    assert study_flags(db, network.reported_uid) == []


def test_a_major_discrepancy_before_the_report_is_signed_flags_nothing(
    client: TestClient, network: Network, db: sessionmaker[Session]
) -> None:
    opinion_id = asked(client, network["asker"], network.study_uid)
    client.post(f"{QUEUE}/{opinion_id}/claim", headers=network["neuro_south"])

    answered = client.post(
        f"{QUEUE}/{opinion_id}/answer",
        json={"agreement": "major_discrepancy", "text": "This is a haemorrhage."},
        headers=network["neuro_south"],
    )

    assert answered.status_code == 200, answered.text
    assert study_flags(db, network.study_uid) == []


def test_withdrawing_a_taken_request_ends_its_grant_and_stops_the_answer(
    client: TestClient, network: Network, db: sessionmaker[Session], redis_url: str
) -> None:
    opinion_id = asked(client, network["asker"], network.study_uid)
    client.post(f"{QUEUE}/{opinion_id}/claim", headers=network["neuro_south"])
    assert _grants(db) != []

    withdrawn = client.post(f"{QUEUE}/{opinion_id}/withdraw", headers=network["asker"])

    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "withdrawn"
    assert _grants(db) == []
    assert opinion_row(db, opinion_id).ended_at is not None
    late = client.post(
        f"{QUEUE}/{opinion_id}/answer",
        json={"agreement": "agree", "text": "Agree."},
        headers=network["neuro_south"],
    )
    assert late.status_code == 409
    assert late.json()["status"] == "withdrawn"
    again = client.post(f"{QUEUE}/{opinion_id}/withdraw", headers=network["asker"])
    assert again.status_code == 409
    assert [e["type"] for e in _events(redis_url)][-1] == EventType.SECOND_OPINION_WITHDRAWN


def test_the_queue_filters_by_status_and_mine_and_pages_with_a_cursor(
    client: TestClient, network: Network, db: sessionmaker[Session]
) -> None:
    first = asked(client, network["asker"], network.study_uid)
    second = asked(client, network["asker"], network.study_uid)
    third = asked(client, network["author"], network.reported_uid)
    client.post(f"{QUEUE}/{second}/claim", headers=network["neuro_south"])

    assert _queue_ids(client, network["neuro_south"]) == [first, second, third]
    assert _queue_ids(client, network["neuro_south"], status="open") == [first, third]
    assert _queue_ids(client, network["neuro_south"], status="claimed") == [second]
    assert _queue_ids(client, network["neuro_south"], mine="true") == [second]
    assert _queue_ids(client, network["asker"], mine="true") == [first, second]
    assert _queue_ids(client, network["manager_north"]) == [first, second, third]
    assert _queue_ids(client, network["manager_south"]) == []
    assert _queue_ids(client, network["admin"]) == [first, second, third]

    seen, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = client.get(QUEUE, headers=network["admin"], params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [first, second, third]
    assert client.get(QUEUE, headers=network["admin"], params={"cursor": "x"}).status_code == 422
    views = audit_rows(db, AuditAction.SECOND_OPINION_VIEW)
    assert views[0].actor == "neuro_south"
    assert views[0].detail["second_opinions"] == [first, second, third]


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"subspecialty": "astrology"}, "subspecialty"),
        ({"radiologist": "nobody"}, "radiologist"),
        ({"radiologist": "manager_north"}, "radiologist"),
        ({"radiologist": "asker"}, "someone else"),
        ({"urgency": "whenever"}, "urgency"),
        ({"question": "   "}, "question"),
        ({"question": "x" * 4001}, "question"),
    ],
)
def test_a_request_with_an_unknown_code_person_or_bad_text_is_refused(
    client: TestClient,
    network: Network,
    db: sessionmaker[Session],
    fields: dict[str, str],
    where: str,
) -> None:
    response = ask(client, network["asker"], network.study_uid, **fields)

    assert response.status_code == 422
    assert where in response.text
    assert audit_rows(db, AuditAction.SECOND_OPINION_REQUESTED) == []
