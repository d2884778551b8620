"""Who is on the other end of each association: looked up once, at association time."""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.indexer import SiteRef
from worklist.models import DicomNode, NodeGrant, Site


@dataclass
class Peer:
    """An accepted association's calling node and what it has sent so far."""

    ae_title: str
    address: str
    site: SiteRef
    node_id: int
    started: float = field(default_factory=time.monotonic)
    stored: int = 0
    failed: int = 0
    bytes: int = 0


class UnknownPeer(Exception):
    """The calling AE title is not an active registered node, or the address does not match."""


def find_node(sessions: sessionmaker[Session], ae_title: str, address: str) -> Peer:
    """Resolve an association's calling AE title and peer address to a registered node."""
    with sessions() as session:
        row = session.execute(
            select(DicomNode.id, DicomNode.hosts, Site.id, Site.code, Site.default_priority)
            .join(Site, Site.id == DicomNode.site_id)
            .where(DicomNode.ae_title == ae_title, DicomNode.active, Site.active)
        ).one_or_none()
    if row is None:
        raise UnknownPeer(f"calling AE title {ae_title!r} is not a registered node")
    node_id, hosts, site_id, site_code, default_priority = row
    if hosts and not _address_matches(address, hosts):
        raise UnknownPeer(f"address {address} is not registered for {ae_title!r}")
    return Peer(
        ae_title=ae_title,
        address=address,
        site=SiteRef(id=site_id, code=site_code, default_priority=default_priority),
        node_id=node_id,
    )


def node_site_ids(session: Session, node_id: int) -> set[int]:
    """The sites whose studies a node may query and retrieve: its own and those granted."""
    own = select(DicomNode.site_id).where(DicomNode.id == node_id)
    granted = select(NodeGrant.site_id).where(NodeGrant.node_id == node_id)
    return set(session.scalars(own.union(granted)))


def _address_matches(address: str, hosts: list[str]) -> bool:
    try:
        peer = ipaddress.ip_address(address)
    except ValueError:
        return address in hosts
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped:
        peer = peer.ipv4_mapped
    for host in hosts:
        try:
            if ipaddress.ip_address(host) == peer:
                return True
        except ValueError:
            continue
    return False


class PeerTable:
    """Thread-safe map from live associations to their peers."""

    def __init__(self) -> None:
        self._peers: dict[int, Peer] = {}
        self._lock = threading.Lock()

    def add(self, key: object, peer: Peer) -> None:
        """Remember the peer of an association."""
        with self._lock:
            self._peers[id(key)] = peer

    def get(self, key: object) -> Peer | None:
        """The peer of an association, if it was accepted."""
        with self._lock:
            return self._peers.get(id(key))

    def pop(self, key: object) -> Peer | None:
        """Forget an association."""
        with self._lock:
            return self._peers.pop(id(key), None)
