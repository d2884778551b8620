"""Who may read and write reports: invisible studies are 404, visible non-holders 403."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from tests.reports.conftest import (
    ADMIN,
    ALERTS,
    COLLEAGUE,
    HOLDER,
    MANAGER,
    STRANGER,
    Ward,
    set_claim,
    versions_of,
)
from worklist.models import User, user_sites

MISSING_UID = "1.2.826.0.1.999999.1"


@pytest.mark.parametrize("who", [STRANGER, ALERTS])
def test_a_study_the_caller_cannot_see_is_404_for_every_report_call(ward: Ward, who: str) -> None:
    ward.signed()

    responses = [
        ward.get(who),
        ward.save(who, "text"),
        ward.save(who, "text", if_match=2),
        ward.finalise(who, 2),
        ward.addendum(who, "text"),
    ]

    assert [r.status_code for r in responses] == [404] * len(responses)
    missing = ward.get(who, uid=MISSING_UID)
    assert {r.json()["detail"] for r in responses} == {missing.json()["detail"]}


@pytest.mark.parametrize("who", [COLLEAGUE, MANAGER, ADMIN])
def test_a_visible_study_held_by_someone_else_is_403_for_drafts_and_signing(
    ward: Ward, db: sessionmaker[Session], who: str
) -> None:
    ward.save(HOLDER, "draft")

    assert ward.save(who, "first save by another").status_code == 403
    assert ward.save(who, "takeover", if_match=1).status_code == 403
    assert ward.finalise(who, 1).status_code == 403
    assert ward.get(who).json()["text"] == "draft"
    assert len(versions_of(db, ward.study_uid)) == 1


@pytest.mark.parametrize("who", [COLLEAGUE, MANAGER, ADMIN])
def test_visible_callers_may_read_the_report(ward: Ward, who: str) -> None:
    ward.save(HOLDER, "draft")

    assert ward.get(who).status_code == 200


def test_nobody_may_save_an_unclaimed_study(ward: Ward, db: sessionmaker[Session]) -> None:
    set_claim(db, ward.study_uid, None)

    assert ward.save(HOLDER, "no claim").status_code == 403


def test_a_new_claim_holder_may_take_over_a_draft_and_becomes_its_author(
    ward: Ward, db: sessionmaker[Session]
) -> None:
    ward.save(HOLDER, "started")
    set_claim(db, ward.study_uid, COLLEAGUE)

    assert ward.save(HOLDER, "lost my claim", if_match=1).status_code == 403
    response = ward.save(COLLEAGUE, "finished", if_match=1)

    assert response.status_code == 200
    assert response.json()["author"] == COLLEAGUE
    first, second = versions_of(db, ward.study_uid)
    assert first.saved_by_id != second.saved_by_id


@pytest.mark.parametrize("who", [COLLEAGUE, MANAGER, ADMIN])
def test_only_the_author_or_claim_holder_may_add_an_addendum(ward: Ward, who: str) -> None:
    ward.signed()

    assert ward.addendum(who, "not theirs").status_code == 403
    assert ward.addendum(HOLDER, "the author's").status_code == 201


def test_the_author_without_privileges_at_the_site_any_more_gets_404(
    ward: Ward, db: sessionmaker[Session]
) -> None:
    ward.signed()
    with db() as session, session.begin():
        holder_id = session.scalars(select(User.id).where(User.username == HOLDER)).one()
        session.execute(delete(user_sites).where(user_sites.c.user_id == holder_id))

    assert ward.addendum(HOLDER, "no longer credentialed").status_code == 404
    assert ward.get(HOLDER).status_code == 404
