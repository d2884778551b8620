"""`worklist site allocation CODE [--cap] [--next-only-routine] [--general-reader] [...]`."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, audit_rows, sites
from tests.cli.conftest import Invoke
from worklist.enums import AuditAction
from worklist.models import Site

__all__ = ["sites"]


def test_cli_shows_and_changes_a_sites_allocation(
    invoke: Invoke, db: sessionmaker[Session], sites: dict[str, Site]
) -> None:
    shown = invoke("site", "allocation", NORTH)
    changed = invoke(
        "site",
        "allocation",
        NORTH,
        "--cap",
        "2",
        "--next-only-routine",
        "--general-reader",
        "after_share",
        "--general-after-share",
        "0.25",
    )
    refused = invoke("site", "allocation", NORTH, "--general-after-share", "2")

    assert shown.exit_code == 0, shown.output
    assert "cap: 3 studies held at once" in shown.output
    assert "general reader: always" in shown.output
    assert changed.exit_code == 0, changed.output
    assert "next only for routine work: yes" in changed.output
    assert "general reader: after_share (0.25 of the time to target)" in changed.output
    assert refused.exit_code != 0
    with db() as session:
        site = session.scalars(select(Site).where(Site.code == NORTH)).one()
    assert (site.allocation_cap, site.next_only_routine) == (2, True)
    assert (site.general_reader, site.general_after_share) == ("after_share", 0.25)
    [row] = audit_rows(db, AuditAction.ALLOCATION_CHANGED)
    assert row.actor_kind == "system"
    assert invoke("site", "allocation", "NOWHERE").exit_code == 1
