"""Query/retrieve on the gateway's AE title: C-FIND, C-MOVE and C-GET (Study Root).

A node sees the studies of its own site and of the sites granted to it
(``node_site_ids``); everything is answered from the PostgreSQL index, and only a
retrieval opens the stored files, which are sent as they were received.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import build_context, evt
from pynetdicom.dimse_messages import C_STORE_RSP
from sqlalchemy.exc import SQLAlchemyError

from dicom_gateway import status
from dicom_gateway.associations import Peer, node_site_ids
from dicom_gateway.handlers import GatewayContext, on_connected
from dicom_gateway.qr_match import InvalidIdentifier, parse_identifier
from dicom_gateway.qr_repository import (
    StoredInstance,
    destination_node,
    find_matches,
    instances_to_retrieve,
)
from dicom_gateway.qr_response import find_response
from dicom_gateway.qr_send import StoredFile
from worklist.audit.repository import ActorKind, new_event
from worklist.enums import AuditAction
from worklist.matching.values import Level, Matching

log = logging.getLogger("dicom_gateway")

# Most matches one C-FIND answers, by level; the rest are left out (and logged).
MAX_FIND_MATCHES = {Level.STUDY: 1000, Level.SERIES: 10_000, Level.IMAGE: 10_000}
# Number of ... Sub-operations is a US: one retrieval moves at most this many instances.
MAX_RETRIEVE_INSTANCES = 65_535
# Study UIDs named in one study.queried audit row.
AUDIT_MAX_STUDY_UIDS = 100
# A DICOM association carries at most 128 presentation contexts.
MAX_PRESENTATION_CONTEXTS = 128
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"

FindResult = tuple[int | Dataset, Dataset | None]


class RetrieveUnavailable(Exception):
    """A C-MOVE cannot be planned; pynetdicom answers 0xC514 (unable to process)."""


def on_find(event: Any, ctx: GatewayContext) -> Iterator[FindResult]:
    """C-FIND: matches of the calling node's visible studies, one pending response each."""
    peer = ctx.peers.get(event.assoc)
    if peer is None:  # cannot happen: unaccepted associations never get here
        yield _status(status.OUT_OF_RESOURCES, "association not accepted"), None
        return
    try:
        identifier = event.identifier
        query = parse_identifier(identifier)
    except InvalidIdentifier as exc:
        yield _status(exc.status, exc.reason), None
        return
    except Exception as exc:  # undecodable identifier: pynetdicom re-raises decoding errors
        log.warning("undecodable identifier", extra={"error": type(exc).__name__})
        yield _status(status.UNABLE_TO_PROCESS, "identifier cannot be decoded"), None
        return
    try:
        rows = _find(ctx, peer, query)
    except SQLAlchemyError as exc:
        log.warning("query failed", extra={"calling_ae": peer.ae_title, "error": _kind(exc)})
        yield _status(status.OUT_OF_RESOURCES, "index unavailable, retry later"), None
        return
    for row in rows:
        if event.is_cancelled:
            yield status.CANCEL, None
            return
        yield status.PENDING, find_response(row, query, identifier, ctx.ae_title)


def _find(ctx: GatewayContext, peer: Peer, query: Matching) -> list[Any]:
    limit = MAX_FIND_MATCHES[query.level]
    with ctx.sessions() as session, session.begin():
        site_ids = node_site_ids(session, peer.node_id)
        rows = find_matches(session, query, site_ids, limit)
        study_uids = list(dict.fromkeys(row["study_uid"] for row in rows))
        if study_uids:
            session.add(
                new_event(
                    actor=peer.ae_title,
                    actor_kind=ActorKind.NODE,
                    action=AuditAction.STUDY_QUERIED,
                    study_uid=study_uids[0] if len(study_uids) == 1 else None,
                    site_id=rows[0]["site_id"] if len({r["site_id"] for r in rows}) == 1 else None,
                    address=peer.address,
                    detail={
                        "level": query.level.value,
                        "matches": len(rows),
                        "study_uids": study_uids[:AUDIT_MAX_STUDY_UIDS],
                        "studies": len(study_uids),
                    },
                )
            )
    if len(rows) == limit:
        log.warning(
            "query matches capped",
            extra={"calling_ae": peer.ae_title, "level": query.level.value, "limit": limit},
        )
    return rows


@dataclass
class SubOperations:
    """C-STORE sub-operation outcomes of one retrieval, from the responses received."""

    completed: set[str] = field(default_factory=set)
    warned: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_message(self, event: Any) -> None:
        """EVT_DIMSE_RECV: note each C-STORE response's outcome by SOP Instance UID."""
        message = event.message
        if not isinstance(message, C_STORE_RSP):
            return
        command = message.command_set
        code = int(command.Status)
        uid = str(command.get("AffectedSOPInstanceUID", ""))
        with self._lock:
            if code == status.SUCCESS:
                self.completed.add(uid)
            elif code in status.STORE_WARNINGS:
                self.warned.add(uid)


def on_move(event: Any, ctx: GatewayContext) -> Iterator[Any]:
    """C-MOVE: send the named instances the calling node may see to a registered node."""
    peer = ctx.peers.get(event.assoc)
    destination_ae = str(event.move_destination or "").strip()
    try:
        if peer is None:
            raise RetrieveUnavailable("association not accepted")
        query = parse_identifier(event.identifier, retrieve=True)
        with ctx.sessions() as session, session.begin():
            destination = destination_node(session, destination_ae)
            instances = (
                []
                if destination is None or destination.port is None
                else _instances(session, peer, query, destination_node_id=destination.node_id)
            )
    except (InvalidIdentifier, SQLAlchemyError) as exc:
        log.warning("move refused", extra={"destination": destination_ae, "error": _kind(exc)})
        raise RetrieveUnavailable(_kind(exc)) from exc
    if destination is None or destination.port is None:
        log.warning(
            "move destination unknown",
            extra={"calling_ae": peer.ae_title, "destination": destination_ae},
        )
        yield None, None  # pynetdicom answers 0xA801 Move destination unknown
        return
    outcomes = SubOperations()
    host = destination.hosts[0] if destination.hosts else peer.address
    yield (
        host,
        destination.port,
        {
            "contexts": _contexts(instances),
            "evt_handlers": [
                (evt.EVT_CONN_OPEN, on_connected),
                (evt.EVT_DIMSE_RECV, outcomes.on_message),
            ],
        },
    )
    yield from _send(event, ctx, peer, query, instances, outcomes, destination_ae)


def on_get(event: Any, ctx: GatewayContext) -> Iterator[Any]:
    """C-GET: send the named instances the calling node may see over its own association."""
    peer = ctx.peers.get(event.assoc)
    if peer is None:  # cannot happen: unaccepted associations never get here
        yield 1
        yield _status(status.OUT_OF_RESOURCES, "association not accepted"), None
        return
    try:
        query = parse_identifier(event.identifier, retrieve=True)
        with ctx.sessions() as session, session.begin():
            instances = _instances(session, peer, query)
    except InvalidIdentifier as exc:
        yield 1
        yield _status(exc.status, exc.reason), None
        return
    except SQLAlchemyError as exc:
        log.warning("get failed", extra={"calling_ae": peer.ae_title, "error": _kind(exc)})
        yield 1
        yield _status(status.OUT_OF_RESOURCES_MATCHES, "index unavailable, retry later"), None
        return
    outcomes = SubOperations()
    event.assoc.bind(evt.EVT_DIMSE_RECV, outcomes.on_message)
    try:
        yield from _send(event, ctx, peer, query, instances, outcomes, peer.ae_title)
    finally:
        event.assoc.unbind(evt.EVT_DIMSE_RECV, outcomes.on_message)


def _instances(
    session: Any, peer: Peer, query: Matching, *, destination_node_id: int | None = None
) -> list[StoredInstance]:
    """What the caller may retrieve; for a C-MOVE, only what the destination may see too:
    a node cannot push a trust's studies to a node with no reason to hold them."""
    site_ids = node_site_ids(session, peer.node_id)
    if destination_node_id is not None and destination_node_id != peer.node_id:
        site_ids &= node_site_ids(session, destination_node_id)
    return instances_to_retrieve(session, query, site_ids, MAX_RETRIEVE_INSTANCES)


def _send(
    event: Any,
    ctx: GatewayContext,
    peer: Peer,
    query: Matching,
    instances: list[StoredInstance],
    outcomes: SubOperations,
    destination: str,
) -> Iterator[Any]:
    yield len(instances)
    attempted: list[StoredInstance] = []
    try:
        for instance in instances:
            if event.is_cancelled:
                yield status.CANCEL, None
                return
            attempted.append(instance)
            yield status.PENDING, _load(ctx, instance)
    finally:
        # Runs once the last sub-operation's response is in (pynetdicom resumes us for more).
        _audit_retrieval(ctx, peer, query, attempted, outcomes, destination)


def _load(ctx: GatewayContext, instance: StoredInstance) -> Dataset:
    """The stored instance, to be sent from its file as stored (``qr_send``); a stub that
    fails its sub-operation when the file is missing."""
    path = ctx.storage.absolute(instance.path)
    if not path.is_file():
        log.error("stored instance missing", extra={"sop_instance_uid": instance.sop_instance_uid})
        # No file meta: pynetdicom cannot pick a context, counts a failure and names the UID.
        stub = Dataset()
        stub.SOPClassUID = instance.sop_class_uid
        stub.SOPInstanceUID = instance.sop_instance_uid
        return stub
    return StoredFile(path, instance.sop_class_uid, instance.sop_instance_uid)


def _contexts(instances: list[StoredInstance]) -> list[Any]:
    """One context per (SOP class, transfer syntax) held, plus uncompressed fallbacks."""
    wanted: dict[tuple[str, str], None] = {}
    for instance in instances:
        wanted[(instance.sop_class_uid, instance.transfer_syntax_uid)] = None
    for sop_class, syntax in list(wanted):
        # An explicit VR file converts to implicit VR if that is all the destination takes.
        if syntax == EXPLICIT_VR_LITTLE_ENDIAN:
            wanted[(sop_class, IMPLICIT_VR_LITTLE_ENDIAN)] = None
    pairs = list(wanted)[:MAX_PRESENTATION_CONTEXTS]
    return [build_context(sop_class, [syntax]) for sop_class, syntax in pairs]


def _audit_retrieval(
    ctx: GatewayContext,
    peer: Peer,
    query: Matching,
    attempted: list[StoredInstance],
    outcomes: SubOperations,
    destination: str,
) -> None:
    by_study: dict[str, list[StoredInstance]] = {}
    for instance in attempted:
        by_study.setdefault(instance.study_uid, []).append(instance)
    if not by_study:
        return
    failed = Counter(
        i.study_uid
        for i in attempted
        if i.sop_instance_uid not in outcomes.completed
        and i.sop_instance_uid not in outcomes.warned
    )
    try:
        with ctx.sessions() as session, session.begin():
            for study_uid, sent in by_study.items():
                session.add(
                    new_event(
                        actor=peer.ae_title,
                        actor_kind=ActorKind.NODE,
                        action=AuditAction.STUDY_RETRIEVED,
                        study_uid=study_uid,
                        site_id=sent[0].site_id,
                        address=peer.address,
                        detail={
                            "level": query.level.value,
                            "destination": destination,
                            "instances": len(sent),
                            "failed": failed[study_uid],
                        },
                    )
                )
    except SQLAlchemyError:
        log.exception(
            "retrieval not audited",
            extra={"calling_ae": peer.ae_title, "studies": list(by_study)[:10]},
        )


def _kind(exc: Exception) -> str:
    """What went wrong, fit for a log: an identifier's reason, else only the error's type.

    A database error's text carries the query's parameters (patient names searched for).
    """
    return exc.reason if isinstance(exc, InvalidIdentifier) else type(exc).__name__


def _status(code: int, comment: str) -> Dataset:
    response = Dataset()
    response.Status = code
    response.ErrorComment = comment[:64]
    return response
