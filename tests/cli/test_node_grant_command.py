"""`worklist node grant|revoke`: which other sites' studies a DICOM node may see."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.associations import node_site_ids
from tests.cli.conftest import Invoke
from tests.cli.test_site_user_commands import add_site, assert_clean_error
from worklist.enums import AuditAction
from worklist.models import AuditEvent, DicomNode, NodeGrant


def _node_sites(db: sessionmaker[Session], ae_title: str) -> set[int]:
    with db() as session:
        node = session.scalars(select(DicomNode).where(DicomNode.ae_title == ae_title)).one()
        return node_site_ids(session, node.id)


def _site_id(db: sessionmaker[Session], ae_title: str) -> int:
    with db() as session:
        node = session.scalars(select(DicomNode).where(DicomNode.ae_title == ae_title)).one()
        return node.site_id


def test_a_granted_node_sees_the_other_site_and_the_grant_is_audited_once(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    assert add_site(invoke, "RXA", "RXA_PACS").exit_code == 0
    assert add_site(invoke, "RXB", "RXB_WS").exit_code == 0
    rxa, rxb = _site_id(db, "RXA_PACS"), _site_id(db, "RXB_WS")
    assert _node_sites(db, "RXB_WS") == {rxb}

    first = invoke("node", "grant", "RXB_WS", "--site", "RXA")
    again = invoke("node", "grant", "RXB_WS", "--site", "RXA")

    assert first.exit_code == 0, first.output
    assert "may now query and retrieve RXA" in first.stdout
    assert again.exit_code == 0, again.output
    assert "already had access" in again.stdout
    assert _node_sites(db, "RXB_WS") == {rxa, rxb}
    assert _node_sites(db, "RXA_PACS") == {rxa}
    with db() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.action == AuditAction.NODE_GRANTED)
        ).all()
    assert [(r.site_id, r.detail["ae_title"]) for r in rows] == [(rxa, "RXB_WS")]
    listing = invoke("site", "list")
    row = next(line for line in listing.stdout.splitlines() if "RXB_WS" in line)
    assert "RXA" in row


def test_revoke_withdraws_the_grant(invoke: Invoke, db: sessionmaker[Session]) -> None:
    add_site(invoke, "RXA", "RXA_PACS")
    add_site(invoke, "RXB", "RXB_WS")
    invoke("node", "grant", "RXB_WS", "--site", "RXA")

    result = invoke("node", "revoke", "RXB_WS", "--site", "RXA")

    assert result.exit_code == 0, result.output
    assert _node_sites(db, "RXB_WS") == {_site_id(db, "RXB_WS")}
    with db() as session:
        assert session.scalars(select(NodeGrant)).all() == []
    assert "had no grant" in invoke("node", "revoke", "RXB_WS", "--site", "RXA").stdout


def test_granting_a_node_its_own_site_changes_nothing(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    add_site(invoke, "RXA", "RXA_PACS")

    result = invoke("node", "grant", "RXA_PACS", "--site", "RXA")

    assert result.exit_code == 0, result.output
    assert "already sees its studies" in result.stdout
    with db() as session:
        assert session.scalars(select(NodeGrant)).all() == []


def test_unknown_nodes_and_sites_are_clear_errors(invoke: Invoke) -> None:
    add_site(invoke, "RXA", "RXA_PACS")

    assert_clean_error(invoke("node", "grant", "NOPE", "--site", "RXA"), "no DICOM node")
    assert_clean_error(invoke("node", "grant", "RXA_PACS", "--site", "NOPE"), "no site 'NOPE'")
    assert_clean_error(
        invoke("node", "revoke", "RXA_PACS", "--site", "RXA"), "its own site is not a grant"
    )
