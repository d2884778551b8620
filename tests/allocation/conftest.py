"""Allocation test helpers: site settings, subspecialty codes, studies timed against now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from tests.api.conftest import client, sites
from tests.claims.conftest import live_api, staff
from worklist.models import Claim, Site, Study, Subspecialty

# Fixtures of the API and claim tests this package uses too.
__all__ = ["client", "live_api", "sites", "staff"]


def ensure_subspecialties(session: Session, *codes: str) -> None:
    """The vocabulary codes the test's studies name (the migration seeds them; the per-test
    reset may have emptied the table)."""
    rows = [{"code": code, "name": code} for code in codes]
    session.execute(insert(Subspecialty).values(rows).on_conflict_do_nothing())


def set_allocation(session: Session, site: Site, **values: Any) -> None:
    """Set the site's allocation columns (``allocation_cap``, ``next_only_routine``, ...)."""
    row = session.get_one(Site, site.id)
    for name, value in values.items():
        setattr(row, name, value)
    session.flush()


def timing(
    share_elapsed: float, *, target: timedelta = timedelta(hours=4)
) -> tuple[datetime, datetime]:
    """``received_at`` and ``due_at`` so that ``share_elapsed`` of the target has passed now."""
    received_at = datetime.now(UTC) - target * share_elapsed
    return received_at, received_at + target


def claims_of(session: Session) -> dict[str, tuple[int, str | None]]:
    """Every committed claim: study UID -> (holder id, the group's first study UID)."""
    first = {s.id: s.study_uid for s in session.scalars(select(Study))}
    rows = session.execute(
        select(Study.study_uid, Claim.user_id, Claim.group_study_id).join(
            Claim, Claim.study_id == Study.id
        )
    )
    return {
        uid: (user_id, first[group] if group is not None else None) for uid, user_id, group in rows
    }
