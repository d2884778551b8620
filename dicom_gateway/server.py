"""Build and run the gateway's pynetdicom SCP."""

from __future__ import annotations

import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydicom import config as pydicom_config
from pydicom.uid import AllTransferSyntaxes
from pynetdicom import AllStoragePresentationContexts, _config, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from dicom_gateway.associations import PeerTable
from dicom_gateway.events import StudyReceivedPublisher
from dicom_gateway.handlers import (
    GatewayContext,
    on_closed,
    on_connected,
    on_echo,
    on_requested,
    on_store,
)
from dicom_gateway.indexer import GroupCommitter
from dicom_gateway.qr import on_find, on_get, on_move
from dicom_gateway.qr_send import send_stored_files
from dicom_gateway.reactor_fix import install_reactor_fix
from dicom_gateway.receive_fix import GatewayAE, install_receive_fix
from dicom_gateway.receiving import ReceiveArea
from dicom_gateway.storage import Storage
from worklist.config import Settings
from worklist.db import make_engine, make_sessionmaker
from worklist.events.bus import make_sync_redis

log = logging.getLogger("dicom_gateway")

MAX_ASSOCIATIONS = 64
# Datasets being received, beside the store (DATA_DIR/dicom): placing them is a rename.
RECEIVE_DIR_NAME = "tmp"
# How soon the acceptor notices shutdown() (socketserver's default poll is 0.5 s).
SHUTDOWN_POLL_SECONDS = 0.05


class ReusePortServer(ThreadedAssociationServer):
    """An association server whose port other gateway processes may bind too."""

    def server_bind(self) -> None:
        """Set SO_REUSEPORT before binding."""
        if self.socket is not None:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class Gateway:
    """The DICOM gateway: one SCP, one committer thread, one connection pool."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine = make_engine(
            settings.require_database_url(), pool_size=8, application_name="worklist-gateway"
        )
        sessions = make_sessionmaker(self._engine)
        # study.received events, when there is a Redis to publish them to.
        self.events = (
            StudyReceivedPublisher(make_sync_redis(settings.redis_url))
            if settings.redis_url
            else None
        )
        self.committer = GroupCommitter(
            self._engine,
            turnaround=settings.turnaround_targets,
            max_batch=settings.gateway_group_commit_max,
            on_committed=self.events.on_committed if self.events else None,
        )
        self.context = GatewayContext(
            ae_title=settings.gateway_ae_title,
            sessions=sessions,
            storage=Storage(settings.dicom_dir),
            committer=self.committer,
            peers=PeerTable(),
            io_pool=ThreadPoolExecutor(max_workers=8, thread_name_prefix="fsync"),
        )
        self.receive_area = ReceiveArea(settings.data_dir / RECEIVE_DIR_NAME)
        self.ae = _build_ae(settings)
        self._server: Any = None
        self._stopped = threading.Event()
        self.port: int = settings.gateway_port

    def start(self) -> None:
        """Bind and serve in background threads; ``port`` is the bound port afterwards."""
        # Received datasets stream to a file instead of memory: bounded memory for any size.
        _config.STORE_RECV_CHUNKED_DATASET = True
        # C-MOVE/C-GET sub-operations go out from the stored files, as stored.
        send_stored_files()
        install_reactor_fix()
        install_receive_fix()
        self.ae.receive_dir = self.receive_area.open()
        # pydicom/pynetdicom regex-check every UID they build (PDUs, headers): a large share
        # of ingest CPU. The gateway checks the UIDs it relies on itself (worklist.uids).
        pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
        self.committer.start()
        if self.events is not None:
            self.events.start()
        handlers: list[Any] = [
            (evt.EVT_CONN_OPEN, on_connected),
            (evt.EVT_REQUESTED, on_requested, [self.context]),
            (evt.EVT_C_ECHO, on_echo),
            (evt.EVT_C_STORE, on_store, [self.context]),
            (evt.EVT_C_FIND, on_find, [self.context]),
            (evt.EVT_C_MOVE, on_move, [self.context]),
            (evt.EVT_C_GET, on_get, [self.context]),
            (evt.EVT_CONN_CLOSE, on_closed, [self.context]),
        ]
        address = (self.settings.gateway_host, self.settings.gateway_port)
        # Several gateway processes may share the port; the kernel spreads associations.
        server_class = (
            ReusePortServer if self.settings.gateway_reuse_port else ThreadedAssociationServer
        )
        # As start_server(block=False) does, but shutdown() is noticed within a short poll.
        self._server = self.ae.make_server(
            address, evt_handlers=handlers, server_class=server_class
        )
        self.ae._servers.append(self._server)  # shutdown expects it there
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name="gateway-acceptor",
            daemon=True,
        ).start()
        self.port = int(self._server.server_address[1])
        log.info(
            "gateway listening",
            extra={
                "ae_title": self.settings.gateway_ae_title,
                "host": self.settings.gateway_host,
                "port": self.port,
                "storage": str(self.settings.dicom_dir),
            },
        )

    def serve_forever(self) -> None:
        """Start if needed and block until ``shutdown``."""
        if self._server is None:
            self.start()
        self._stopped.wait()

    def shutdown(self) -> None:
        """Stop accepting, finish in-flight commits and release resources."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
            self.committer.stop()
            if self.events is not None:
                self.events.stop()
        self.context.io_pool.shutdown(wait=True)
        self.receive_area.close()
        self._engine.dispose()
        self._stopped.set()
        log.info("gateway stopped")


def _build_ae(settings: Settings) -> GatewayAE:
    ae = GatewayAE(ae_title=settings.gateway_ae_title)
    ae.maximum_pdu_size = settings.gateway_max_pdu
    ae.maximum_associations = MAX_ASSOCIATIONS
    # Association acceptance is decided in on_requested (called + calling AE, host).
    ae.require_called_aet = False
    transfer_syntaxes = [str(uid) for uid in AllTransferSyntaxes]
    for context in AllStoragePresentationContexts:
        if context.abstract_syntax is not None:
            # Both roles: a C-GET requestor proposes to be the storage SCP on its association
            # (role selection); a sender proposing nothing keeps the default roles.
            ae.add_supported_context(
                context.abstract_syntax, transfer_syntaxes, scu_role=True, scp_role=True
            )
    ae.add_supported_context(Verification)
    for model in (
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelMove,
        StudyRootQueryRetrieveInformationModelGet,
    ):
        ae.add_supported_context(model)
    return ae


def build_gateway(settings: Settings) -> Gateway:
    """Make a gateway for ``settings`` (nothing is bound until ``start``)."""
    return Gateway(settings)
