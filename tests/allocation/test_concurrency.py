"""50 radiologists (ten of them from two clients at once, two tabs) calling ``worklist/next``
over a mixed backlog with caps, over real sockets against a live uvicorn API: no study is
handed out twice, nobody goes over a cap, and the urgent work all goes out."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.allocation.conftest import ensure_subspecialties, set_allocation
from tests.api.conftest import NORTH, SOUTH, T0, add_patient, add_study, bearer
from tests.claims.conftest import add_account
from worklist.config import Settings
from worklist.enums import Priority, Role
from worklist.identity import make_nhs_number
from worklist.models import Claim, Site, Study, User

NEXT = "/api/v1/worklist/next"
CAP = 1
RADIOLOGISTS = 50
# Every fifth radiologist calls from two clients at once.
TWO_TABS_EVERY = 5
# The pool: requests beyond it wait for a connection, long enough never to be shed.
IN_DATABASE_AT_ONCE = 20
POOL_TIMEOUT_SECONDS = 50.0
HTTP_TIMEOUT_SECONDS = 60.0
EXEMPT = (Priority.STAT, Priority.URGENT)
PRIORITIES = (
    Priority.ROUTINE,
    Priority.INPATIENT,
    Priority.ROUTINE,
    Priority.URGENT,
    Priority.STAT,
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test settings with a pool of ``IN_DATABASE_AT_ONCE`` that never sheds here."""
    return settings.model_copy(
        update={
            "api_db_pool_size": IN_DATABASE_AT_ONCE,
            "api_db_pool_timeout_seconds": POOL_TIMEOUT_SECONDS,
        }
    )


def backlog(db: sessionmaker[Session], sites: dict[str, Site]) -> None:
    """100 studies at two trusts (a fifth stat or urgent, a third neuro: more routine work
    than the caps let out), and five patients with a study at each trust; NORTH never
    gives neuro work to a general reader, SOUTH always."""
    with db() as session, session.begin():
        ensure_subspecialties(session, "neuro")
        set_allocation(session, sites[NORTH], allocation_cap=CAP, general_reader="never")
        set_allocation(session, sites[SOUTH], allocation_cap=CAP, general_reader="always")
        for n in range(100):
            site = sites[NORTH if n % 2 else SOUTH]
            add_study(
                session,
                add_patient(session, site),
                priority=PRIORITIES[n % len(PRIORITIES)],
                subspecialty="neuro" if n % 3 == 0 else None,
                received_at=T0,
            )
        for n in range(5):
            nhs = make_nhs_number(9000 + n)
            for code in (NORTH, SOUTH):
                add_study(
                    session, add_patient(session, sites[code], nhs_number=nhs), received_at=T0
                )


def staff(db: sessionmaker[Session], settings: Settings) -> dict[str, dict[str, str]]:
    """Bearer headers by username: privileges at both trusts, NORTH or SOUTH only; half
    of them neuroradiologists."""
    people = {}
    with db() as session, session.begin():
        for n in range(RADIOLOGISTS):
            codes = ((NORTH, SOUTH), (NORTH,), (SOUTH,))[n % 3]
            user = add_account(session, f"rad{n:02d}", Role.RADIOLOGIST, *codes)
            user.subspecialties = ["neuro"] if n % 2 else []
            people[user.username] = bearer(settings, user)
    return people


def test_fifty_radiologists_calling_next_at_once_share_the_backlog_within_their_caps(
    live_api: str, db: sessionmaker[Session], sites: dict[str, Site], settings: Settings
) -> None:
    backlog(db, sites)
    people = staff(db, settings)
    callers = [
        (name, headers)
        for n, (name, headers) in enumerate(people.items())
        for _ in range(2 if n % TWO_TABS_EVERY == 0 else 1)
    ]
    start = threading.Barrier(len(callers))

    def take_until_refused(caller: tuple[str, dict[str, str]]) -> list[httpx.Response]:
        """Call next until it hands nothing out (204) or refuses (409, the cap)."""
        _, headers = caller
        answers = []
        with httpx.Client(base_url=live_api, timeout=HTTP_TIMEOUT_SECONDS) as http:
            start.wait()
            while True:
                answers.append(http.post(NEXT, headers=headers))
                if answers[-1].status_code != 200:
                    return answers

    with ThreadPoolExecutor(max_workers=len(callers)) as pool:
        results = list(pool.map(take_until_refused, callers))

    handed: dict[str, str] = {}
    handed_count: Counter[str] = Counter()
    refusals: Counter[int] = Counter()
    for (name, _), answers in zip(callers, results, strict=True):
        for answer in answers:
            if answer.status_code != 200:
                refusals[answer.status_code] += 1
                assert answer.status_code == 204 or answer.json()["reason"] == "cap", answer.text
                continue
            body = answer.json()
            for uid in [body["study"]["study_uid"], *body["also_claimed"]]:
                handed_count[uid] += 1
                handed[uid] = name
    assert [uid for uid, n in handed_count.items() if n > 1] == []
    assert set(refusals) <= {204, 409}, refusals
    assert refusals[409] > 0, "nobody reached a cap: the backlog is too small to test it"
    with db() as session:
        rows = session.execute(
            select(Study.study_uid, Study.priority, Claim.group_study_id, Claim.user_id).join(
                Claim, Claim.study_id == Study.id
            )
        ).all()
        usernames = {
            row.id: row.username for row in session.execute(select(User.id, User.username))
        }
        exempt_left = session.scalars(
            select(Study.study_uid).where(
                Study.priority.in_(EXEMPT), ~Study.id.in_(select(Claim.study_id))
            )
        ).all()
    assert {row.study_uid: usernames[row.user_id] for row in rows} == handed
    firsts: Counter[str] = Counter()
    counted: Counter[str] = Counter()
    grouped: defaultdict[str, int] = defaultdict(int)
    for row in rows:
        name = usernames[row.user_id]
        if row.group_study_id is not None:
            grouped[name] += 1
        if row.priority not in EXEMPT:
            counted[name] += 1
            if row.group_study_id is None:
                firsts[name] += 1
    # Each case taken under the cap; a patient's other studies may come with the last one.
    assert max(firsts.values()) <= CAP
    assert all(counted[name] <= CAP for name in counted if not grouped[name])
    assert exempt_left == []
