"""pynetdicom event handlers: plain functions bound with the gateway's context."""

from __future__ import annotations

import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway import status
from dicom_gateway.associations import Peer, PeerTable, UnknownPeer, find_node
from dicom_gateway.completeness import IncompleteDataset, check_complete
from dicom_gateway.indexer import GroupCommitter, IndexFailed, IndexRequest
from dicom_gateway.parse import InstanceHeader, InstanceRejected, read_header
from dicom_gateway.receive_fix import discard_partial_dataset
from dicom_gateway.storage import Storage, sync_file
from worklist.metrics import ASSOCIATIONS, INGEST_BYTES, INGEST_INSTANCES, INGEST_LATENCY
from worklist.uids import is_valid_uid

log = logging.getLogger("dicom_gateway")

INDEX_TIMEOUT_SECONDS = 60.0
ERROR_COMMENT_MAX = 64  # (0000,0902) Error Comment is LO


@dataclass
class GatewayContext:
    """What the handlers need: configuration, storage, the committer and live peers."""

    ae_title: str
    sessions: sessionmaker[Session]
    storage: Storage
    committer: GroupCommitter
    peers: PeerTable
    io_pool: ThreadPoolExecutor


def on_connected(event: Any) -> None:
    """Turn Nagle's algorithm off: DIMSE is request/response and small PDUs must not wait."""
    sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def on_requested(event: Any, ctx: GatewayContext) -> None:
    """Accept only our called AE title from registered nodes at their registered hosts."""
    assoc = event.assoc
    primitive = assoc.requestor.primitive
    calling = _ae(primitive.calling_ae_title)
    called = _ae(primitive.called_ae_title)
    address = str(assoc.requestor.address)
    reason = None
    rejection = (status.REJECTED_PERMANENT, status.SOURCE_SERVICE_USER)
    if called != ctx.ae_title:
        diagnostic = status.REASON_CALLED_AE_NOT_RECOGNISED
        reason = f"called AE title {called!r} is not {ctx.ae_title!r}"
    else:
        diagnostic = status.REASON_CALLING_AE_NOT_RECOGNISED
        try:
            ctx.peers.add(assoc, find_node(ctx.sessions, calling, address))
        except UnknownPeer as exc:
            reason = str(exc)
        except SQLAlchemyError as exc:
            # The database is down: ask the sender to come back later, not to give up.
            reason = f"node lookup failed: {type(exc).__name__}"
            rejection = (status.REJECTED_TRANSIENT, status.SOURCE_SERVICE_PROVIDER_PRESENTATION)
            diagnostic = status.REASON_TEMPORARY_CONGESTION
    if reason is None:
        return
    ASSOCIATIONS.labels(outcome="rejected").inc()
    log.warning(
        "association rejected",
        extra={"calling_ae": calling, "called_ae": called, "peer": address, "reason": reason},
    )
    assoc.acse.send_reject(*rejection, diagnostic)
    assoc.kill()


def on_echo(event: Any) -> int:
    """C-ECHO: registered nodes only reach this far."""
    return status.SUCCESS


def on_closed(event: Any, ctx: GatewayContext) -> None:
    """Log one line per accepted association when its connection closes."""
    # An association that ended mid-transfer leaves its half-received dataset behind.
    discard_partial_dataset(getattr(event.assoc, "dimse", None))
    peer = ctx.peers.pop(event.assoc)
    if peer is None:
        return
    ASSOCIATIONS.labels(outcome="completed").inc()
    log.info(
        "association closed",
        extra={
            "calling_ae": peer.ae_title,
            "site": peer.site.code,
            "peer": peer.address,
            "stored": peer.stored,
            "failed": peer.failed,
            "bytes": peer.bytes,
            "seconds": round(time.monotonic() - peer.started, 3),
        },
    )


def on_store(event: Any, ctx: GatewayContext) -> int | Dataset:
    """Store the received file durably, index it, and only then answer success."""
    started = time.perf_counter()
    peer = ctx.peers.get(event.assoc)
    if peer is None:  # cannot happen: unaccepted associations never get here
        return _failure(
            InstanceRejected(status.OUT_OF_RESOURCES, "association not accepted"), None, None
        )
    command_uid = str(event.request.AffectedSOPInstanceUID or "").strip(" \x00")
    try:
        if not command_uid:
            raise InstanceRejected(status.MISSING_UID, "Affected SOP Instance UID is missing")
        if not is_valid_uid(command_uid):
            raise InstanceRejected(status.INVALID_UID, "Affected SOP Instance UID is invalid")
        result = _store(Path(event.dataset_path), command_uid, peer, ctx)
    except InstanceRejected as exc:
        peer.failed += 1
        INGEST_INSTANCES.labels(site=peer.site.code, outcome="rejected").inc()
        return _failure(exc, peer, command_uid)
    peer.stored += 1
    peer.bytes += result
    INGEST_INSTANCES.labels(site=peer.site.code, outcome="stored").inc()
    INGEST_BYTES.labels(site=peer.site.code).inc(result)
    INGEST_LATENCY.observe(time.perf_counter() - started)
    return status.SUCCESS


def _store(source: Path, command_uid: str, peer: Peer, ctx: GatewayContext) -> int:
    # The received file's data goes to disk while we parse its header.
    synced = ctx.io_pool.submit(sync_file, source)
    try:
        header = read_header(source, expected_sop_instance_uid=command_uid)
        check_complete(source)
    except IncompleteDataset as exc:
        raise InstanceRejected(status.CANNOT_UNDERSTAND, str(exc)) from exc
    except OSError as exc:
        raise _storage_failure(exc.strerror) from exc
    finally:
        sync_error = synced.exception()
    if sync_error is not None:
        raise _storage_failure(str(sync_error))
    relative = ctx.storage.relative_path(
        peer.site.code, header.study_uid, header.series_uid, header.sop_instance_uid
    )
    if not ctx.storage.versions(relative):
        return _keep(source, relative, header, peer, ctx)  # a new instance: the common case
    # Another version is stored: one store of this instance at a time, across processes.
    with ctx.storage.locked(relative):
        return _keep(source, relative, header, peer, ctx)


def _keep(
    source: Path, relative: Path, header: InstanceHeader, peer: Peer, ctx: GatewayContext
) -> int:
    """Place the received file (as a new version if one is stored), index it, drop the old."""
    placed: Path | None = None
    try:
        stored = ctx.storage.versions(relative)
        same = next((v for v in stored if ctx.storage.same_content(source, v)), None)
        if same is None:
            # New bytes never overwrite a stored version: the index may still name it.
            placed = ctx.storage.new_version(relative) if stored else relative
            ctx.storage.place(source, placed, synced=True)
        kept = placed or same
        assert kept is not None
        size = ctx.storage.absolute(kept).stat().st_size
    except OSError as exc:
        if placed is not None:
            _discard(ctx.storage, placed)
        raise _storage_failure(exc.strerror) from exc
    request = IndexRequest(
        header=header,
        site=peer.site,
        path=str(kept),
        size_bytes=size,
        actor=peer.ae_title,
        address=peer.address,
        replaced=placed is not None and bool(stored),
    )
    try:
        ctx.committer.submit(request).result(timeout=INDEX_TIMEOUT_SECONDS)
    except (IndexFailed, FutureTimeout) as exc:
        # Whatever was stored before stays, with the index row that names it.
        if placed is not None:
            _discard(ctx.storage, placed)
        if isinstance(exc, IndexFailed) and not exc.retryable:
            raise InstanceRejected(
                status.STUDY_OF_ANOTHER_SITE,
                "Study Instance UID belongs to another sending site",
                detail=str(exc),
            ) from exc
        raise InstanceRejected(
            status.OUT_OF_RESOURCES, "index unavailable, retry later", detail=str(exc)
        ) from exc
    for superseded in stored:
        if superseded != kept:
            _discard(ctx.storage, superseded)
    return size


def _storage_failure(detail: str | None) -> InstanceRejected:
    return InstanceRejected(
        status.OUT_OF_RESOURCES, "storage unavailable, retry later", detail=detail
    )


def _discard(storage: Storage, relative: Path) -> None:
    try:
        storage.remove(relative)
    except OSError:
        log.exception("could not remove unindexed file", extra={"path": str(relative)})


def _failure(rejected: InstanceRejected, peer: Peer | None, sop_uid: str | None) -> Dataset:
    """The failure response: the reason in the sender's terms; the detail only in our log."""
    log.warning(
        "instance rejected",
        extra={
            "status": f"0x{rejected.status:04X}",
            "reason": rejected.reason,
            "detail": rejected.detail,
            "calling_ae": peer.ae_title if peer else None,
            "peer": peer.address if peer else None,
            "sop_instance_uid": sop_uid if sop_uid and is_valid_uid(sop_uid) else "(invalid)",
        },
    )
    response = Dataset()
    response.Status = rejected.status
    response.ErrorComment = rejected.reason[:ERROR_COMMENT_MAX]
    return response


def _ae(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    return str(value).strip()
