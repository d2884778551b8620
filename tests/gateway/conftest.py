"""Gateway fixtures: an in-process SCP on a free port, registered sender sites, SCU helpers."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.server import Gateway, build_gateway
from tests.factories import new_site
from worklist.config import Settings

SITE_A_AE = "SITEA_PACS"
SITE_B_AE = "SITEB_PACS"
FAR_AWAY_AE = "FAR_PACS"


@dataclass
class StoreResult:
    """Outcome of one C-STORE as the sender saw it."""

    sop_instance_uid: str
    status: int
    comment: str | None


@pytest.fixture
def sites(db: sessionmaker[Session]) -> None:
    """Trusts A and B (PACS at 127.0.0.1 / any address) and a node registered elsewhere."""
    with db() as session, session.begin():
        for code, name, aet, hosts in (
            ("RXA", "Trust A", SITE_A_AE, ["127.0.0.1"]),
            ("RXB", "Trust B", SITE_B_AE, []),
            ("RXC", "Trust C", FAR_AWAY_AE, ["10.9.8.7"]),
        ):
            new_site(session, code, name=name, ae_title=aet, hosts=hosts)


@pytest.fixture
def gateway(settings: Settings, sites: None) -> Iterator[Gateway]:
    """A running gateway on a free port."""
    gw = build_gateway(settings)
    gw.start()
    yield gw
    gw.shutdown()


def _meta(item: Dataset | Path) -> tuple[str, str, str]:
    if isinstance(item, Path):
        # The File Meta only: a file cut short (or otherwise broken) still goes out as stored.
        meta = read_file_meta_info(item)
        return (
            str(meta.MediaStorageSOPClassUID),
            str(meta.MediaStorageSOPInstanceUID),
            str(meta.TransferSyntaxUID),
        )
    ts = getattr(getattr(item, "file_meta", None), "TransferSyntaxUID", ExplicitVRLittleEndian)
    return str(item.SOPClassUID), str(item.SOPInstanceUID), str(ts)


def send(
    port: int,
    items: Iterable[Dataset | Path],
    *,
    calling_ae: str = SITE_A_AE,
    called_ae: str = "IMAGING_NET",
) -> list[StoreResult]:
    """Send over one association with an in-process pynetdicom SCU.

    Paths are sent raw (the file's bytes after its meta header, unchanged), datasets
    are encoded in their file meta transfer syntax.
    """
    items = list(items)
    metas = [_meta(item) for item in items]
    ae = AE(ae_title=calling_ae)
    for context in dict.fromkeys((sop_class, ts) for sop_class, _, ts in metas):
        ae.add_requested_context(context[0], [context[1]])
    if not metas:
        ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    if not assoc.is_established:
        raise ConnectionRefusedError("association rejected or aborted")
    no_delay(assoc)
    results = []
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        for item, (_, sop_uid, _) in zip(items, metas, strict=True):
            response = assoc.send_c_store(item)
            results.append(
                StoreResult(
                    sop_instance_uid=sop_uid,
                    status=int(response.Status) if "Status" in response else -1,
                    comment=str(response.ErrorComment) if "ErrorComment" in response else None,
                )
            )
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous
        assoc.release()
    return results


def no_delay(assoc: Any) -> None:
    """Nagle off on an SCU's socket, or each C-STORE waits for a delayed ACK (~40 ms)."""
    assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def association_outcome(
    port: int, *, calling_ae: str = SITE_A_AE, called_ae: str = "IMAGING_NET"
) -> str:
    """'established', 'rejected' or 'aborted' for a C-ECHO association attempt."""
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(Verification, [ImplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    if assoc.is_established:
        status = int(assoc.send_c_echo().Status)
        assoc.release()
        return "established" if status == 0 else f"echo-status-{status}"
    return "rejected" if assoc.is_rejected else "aborted"


def write_files(datasets: Iterable[Dataset], directory: Path) -> list[Path]:
    """Save datasets as DICOM files (with file meta) and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, ds in enumerate(datasets):
        path = directory / f"{index:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def dataset_bytes(path: Path) -> bytes:
    """A DICOM file's bytes after its File Meta Information (what a sender puts on the wire)."""
    from pynetdicom.dsutils import split_dataset

    _, offset = split_dataset(path)
    return path.read_bytes()[offset:]
