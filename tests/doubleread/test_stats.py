"""``GET /api/v1/stats/peer-review``: scores and discrepancy rates per first reader and per
site, for managers (their site) and admins (all); never for radiologists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, audit_rows
from tests.doubleread.conftest import (
    ADMIN,
    ALERTS,
    BOTH,
    FIRST,
    MANAGER,
    SECOND,
    SOUTH_MANAGER,
    THIRD,
    VISITOR,
    Network,
)
from worklist.enums import AuditAction
from worklist.models import DoubleRead

URL = "/api/v1/stats/peer-review"


def _scored(network: Network, *, code: str, author: str, reader: str, score: str | None) -> int:
    uid = network.add_study(code)
    network.report(uid, who=author)
    read_id = network.read_of(uid)
    if score is not None:
        assert network.claim(reader, read_id).status_code == 200
        assert network.submit(reader, read_id, score, "differs").status_code == 200
    return read_id


@pytest.fixture
def scored(network: Network) -> Network:
    """NORTH: FIRST's reports scored 1, 3b and one pending; SECOND's scored 2a.
    SOUTH: BOTH's report scored 1 by VISITOR."""
    network.set_rules({"share": 1})
    network.set_rules({"share": 1}, code=SOUTH)
    _scored(network, code=NORTH, author=FIRST, reader=SECOND, score="1")
    _scored(network, code=NORTH, author=FIRST, reader=SECOND, score="3b")
    _scored(network, code=NORTH, author=FIRST, reader=SECOND, score=None)
    _scored(network, code=NORTH, author=SECOND, reader=THIRD, score="2a")
    _scored(network, code=SOUTH, author=BOTH, reader=VISITOR, score="1")
    return network


def _scores(**counts: int) -> dict[str, int]:
    return {s: counts.get(f"s{s}", 0) for s in ("1", "2a", "2b", "3a", "3b")}


def test_a_manager_sees_their_sites_readers_and_the_site(scored: Network) -> None:
    response = scored.send("GET", MANAGER, URL)
    assert response.status_code == 200, response.text
    body = response.json()
    first, second = body["radiologists"]
    assert first == {
        "username": FIRST,
        "reads": 3,
        "submitted": 2,
        "pending": 1,
        "scores": _scores(s1=1, s3b=1),
        "discrepancy_rate": 0.5,
    }
    assert second["username"] == SECOND
    assert (second["reads"], second["discrepancy_rate"]) == (1, 1.0)
    assert second["scores"] == _scores(s2a=1)
    [site] = body["sites"]
    assert site["site"] == NORTH
    assert (site["reads"], site["submitted"], site["pending"]) == (4, 3, 1)
    assert site["discrepancy_rate"] == pytest.approx(2 / 3)


def test_an_admin_sees_every_site(scored: Network, db: sessionmaker[Session]) -> None:
    body = scored.send("GET", ADMIN, URL).json()
    assert [row["site"] for row in body["sites"]] == [NORTH, SOUTH]
    assert [row["username"] for row in body["radiologists"]] == [BOTH, FIRST, SECOND]
    assert scored.send("GET", SOUTH_MANAGER, URL).json()["sites"][0]["site"] == SOUTH
    rows = audit_rows(db, AuditAction.PEER_REVIEW_STATS_VIEW)
    assert [row.actor for row in rows] == [ADMIN, SOUTH_MANAGER]


def test_arbitrations_are_not_counted_as_second_reads(scored: Network) -> None:
    # The 3b opened an arbitration; the site still counts its four second reads.
    assert len([r for r in scored.reads() if r.kind == "arbitration"]) == 1
    assert scored.send("GET", MANAGER, URL).json()["sites"][0]["reads"] == 4


@pytest.mark.parametrize("who", [FIRST, SECOND, ALERTS])
def test_peers_never_see_the_figures(scored: Network, who: str) -> None:
    assert scored.send("GET", who, URL).status_code == 403


def test_since_and_until_bound_the_reads_by_the_day_they_were_created(
    scored: Network, db: sessionmaker[Session]
) -> None:
    last_week = datetime.now(UTC) - timedelta(days=7)
    with db() as session, session.begin():
        session.execute(
            update(DoubleRead)
            .where(DoubleRead.first_reader_id == scored.ids[SECOND])
            .values(created_at=last_week)
        )
    day = last_week.date()
    old = scored.send("GET", MANAGER, URL, params={"since": str(day), "until": str(day)}).json()
    assert [row["username"] for row in old["radiologists"]] == [SECOND]
    recent = scored.send("GET", MANAGER, URL, params={"since": str(day + timedelta(days=1))})
    assert [row["username"] for row in recent.json()["radiologists"]] == [FIRST]
    assert scored.send("GET", MANAGER, URL, params={"since": "last week"}).status_code == 422
