"""Who gets what from every second opinion endpoint: each role at each site, as one table.

The request is asked by ``asker`` (the NORTH study's claim holder) for ``neuro``. Rows
say the status each caller gets; a caller who may not see the request (or its study)
gets 404, one who sees it but may not do this gets 403, a state that does not allow
the move gets 409.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.opinions.conftest import Network, ask, asked

CALLERS = (
    "asker",
    "colleague",
    "neuro_south",
    "chest_south",
    "manager_north",
    "manager_south",
    "admin",
    "alert_north",
)
QUEUE = "/api/v1/second-opinions"
ANSWER = {"agreement": "agree", "text": "Agree."}

ASK = {
    "asker": 201,
    "colleague": 403,  # sees the study, holds neither its claim nor its report
    "neuro_south": 404,
    "chest_south": 404,
    "manager_north": 403,
    "manager_south": 404,
    "admin": 403,
    "alert_north": 404,
}
# The request open (nobody has taken it).
GET_OPEN = {
    "asker": 200,
    "colleague": 200,  # sees the study, so its requests
    "neuro_south": 200,  # it is open to them
    "chest_south": 404,
    "manager_north": 200,
    "manager_south": 404,
    "admin": 200,
    "alert_north": 404,
}
CLAIM_OPEN = {
    "asker": 403,  # their own
    "colleague": 403,  # not a neuroradiologist
    "neuro_south": 200,
    "chest_south": 404,
    "manager_north": 403,
    "manager_south": 404,
    "admin": 403,
    "alert_north": 404,
}
NEXT_OPEN = {
    "asker": 204,
    "colleague": 204,
    "neuro_south": 200,
    "chest_south": 204,
    "manager_north": 403,
    "manager_south": 403,
    "admin": 403,
    "alert_north": 403,
}
ANSWER_OPEN = {
    "asker": 409,  # not taken yet
    "colleague": 409,
    "neuro_south": 409,
    "chest_south": 404,
    "manager_north": 409,
    "manager_south": 404,
    "admin": 409,
    "alert_north": 404,
}
WITHDRAW_OPEN = {
    "asker": 200,
    "colleague": 403,
    "neuro_south": 403,
    "chest_south": 404,
    "manager_north": 200,
    "manager_south": 404,
    "admin": 200,
    "alert_north": 404,
}
# The request taken by neuro_south.
GET_CLAIMED = {**GET_OPEN}
CLAIM_CLAIMED = {
    "asker": 409,
    "colleague": 409,
    "neuro_south": 200,  # again, as its holder
    "chest_south": 404,
    "manager_north": 409,
    "manager_south": 404,
    "admin": 409,
    "alert_north": 404,
}
ANSWER_CLAIMED = {
    "asker": 403,
    "colleague": 403,
    "neuro_south": 200,
    "chest_south": 404,
    "manager_north": 403,
    "manager_south": 404,
    "admin": 403,
    "alert_north": 404,
}
WITHDRAW_CLAIMED = {**WITHDRAW_OPEN}
# The request answered by neuro_south.
GET_ANSWERED = {**GET_OPEN}
CLAIM_ANSWERED = {
    "asker": 409,
    "colleague": 409,
    "neuro_south": 409,
    "chest_south": 404,
    "manager_north": 409,
    "manager_south": 404,
    "admin": 409,
    "alert_north": 404,
}
ANSWER_ANSWERED = {**CLAIM_ANSWERED}
WITHDRAW_ANSWERED = {**CLAIM_ANSWERED}

TABLE = {
    ("get", "open"): GET_OPEN,
    ("claim", "open"): CLAIM_OPEN,
    ("next", "open"): NEXT_OPEN,
    ("answer", "open"): ANSWER_OPEN,
    ("withdraw", "open"): WITHDRAW_OPEN,
    ("get", "claimed"): GET_CLAIMED,
    ("claim", "claimed"): CLAIM_CLAIMED,
    ("answer", "claimed"): ANSWER_CLAIMED,
    ("withdraw", "claimed"): WITHDRAW_CLAIMED,
    ("get", "answered"): GET_ANSWERED,
    ("claim", "answered"): CLAIM_ANSWERED,
    ("answer", "answered"): ANSWER_ANSWERED,
    ("withdraw", "answered"): WITHDRAW_ANSWERED,
}


def test_every_row_names_every_caller() -> None:
    assert all(set(row) == set(CALLERS) for row in (ASK, *TABLE.values()))


def test_asking(client: TestClient, network: Network) -> None:
    got = {
        caller: ask(client, network[caller], network.study_uid, subspecialty="neuro").status_code
        for caller in CALLERS
    }

    assert got == ASK


def _in_state(client: TestClient, network: Network, state: str) -> int:
    opinion_id = asked(client, network["asker"], network.study_uid, subspecialty="neuro")
    if state in ("claimed", "answered"):
        taken = client.post(f"{QUEUE}/{opinion_id}/claim", headers=network["neuro_south"])
        assert taken.status_code == 200, taken.text
    if state == "answered":
        done = client.post(
            f"{QUEUE}/{opinion_id}/answer", json=ANSWER, headers=network["neuro_south"]
        )
        assert done.status_code == 200, done.text
    return opinion_id


def _call(client: TestClient, network: Network, op: str, opinion_id: int, caller: str) -> int:
    headers = network[caller]
    if op == "get":
        response = client.get(f"{QUEUE}/{opinion_id}", headers=headers)
    elif op == "next":
        response = client.post(f"{QUEUE}/next", headers=headers)
    elif op == "answer":
        response = client.post(f"{QUEUE}/{opinion_id}/answer", json=ANSWER, headers=headers)
    else:
        response = client.post(f"{QUEUE}/{opinion_id}/{op}", headers=headers)
    return response.status_code


@pytest.mark.parametrize(("op", "state"), list(TABLE))
def test_endpoint(client: TestClient, network: Network, op: str, state: str) -> None:
    # Each caller meets a request of their own in ``state``, so one caller's success
    # (a claim, a withdrawal) never changes what the next one meets; ``next`` finds the
    # earlier callers' requests too, which changes nothing for anyone else.
    got = {
        caller: _call(client, network, op, _in_state(client, network, state), caller)
        for caller in CALLERS
    }

    assert got == TABLE[(op, state)]


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        ("asker", 200),
        ("colleague", 200),
        ("neuro_south", 200),
        ("manager_north", 200),
        ("admin", 200),
        ("alert_north", 403),  # no worklist, so no queue
    ],
)
def test_the_queue(client: TestClient, network: Network, caller: str, expected: int) -> None:
    assert client.get(QUEUE, headers=network[caller]).status_code == expected


def test_a_request_on_a_study_the_caller_may_not_see_is_absent_before_its_body_is_read(
    client: TestClient, network: Network
) -> None:
    opinion_id = _in_state(client, network, "claimed")

    answer = client.post(f"{QUEUE}/{opinion_id}/answer", json={}, headers=network["chest_south"])
    asking = client.post(
        f"/api/v1/studies/{network.study_uid}/second-opinions",
        json={},
        headers=network["neuro_south"],
    )

    assert (answer.status_code, asking.status_code) == (404, 404)
    assert client.get(f"{QUEUE}/999999", headers=network["admin"]).status_code == 404
