"""Fixes to how pynetdicom 3.0.4 receives a C-STORE dataset into a file (installed by the gateway).

With ``STORE_RECV_CHUNKED_DATASET`` pynetdicom writes each received dataset to a
``NamedTemporaryFile`` in the system temporary directory, after a File Meta header built
from the command set. Two things went wrong there:

- A C-STORE-RQ whose Affected SOP Instance UID is missing or empty
  made building that header raise in the association's reactor thread: the thread died,
  no response was sent, the association was never closed and a 0-byte temporary file
  was left behind each time. Here the header is then written without that UID, and the
  request (which pynetdicom would drop as invalid, unanswered) reaches our handler,
  which answers 0xC001 (pynetdicom removes the file after).
- The temporary file lived outside ``WORKLIST_DATA_DIR``: placing it in the store was a
  copy across filesystems, and files of killed associations piled up where start-up
  cleaning could not find them. Here it is created in the AE's ``receive_dir``.

Any other error while decoding a message now aborts the association (as pynetdicom does
for a message it cannot convert) instead of killing its thread, and removes the file.

``decode_msg`` below is pynetdicom 3.0.4's (MIT licence) with those changes; the version
is pinned exactly in pyproject.toml and ``tests/gateway/test_receive.py`` fails without it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from tempfile import NamedTemporaryFile
from typing import Any, cast

import pynetdicom
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import _MESSAGE_TYPES, C_STORE_RQ, DIMSEMessage
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import create_file_meta, decode
from pynetdicom.pdu_primitives import P_DATA

LOGGER = logging.getLogger("dicom_gateway.receive")
FIXED_VERSION = "3.0.4"
RECEIVED_SUFFIX = ".dcm"
NO_DATASET = 0x0101  # CommandDataSetType: no dataset follows
INVALID_PDU_EVENT = "Evt19"  # the DUL's "invalid PDU received": abort the association
_INSTALLED = "_worklist_receive_fixed"
_original_receive_primitive = DIMSEServiceProvider.receive_primitive
_original_serve_request = Association._serve_request


class GatewayAE(AE):
    """An AE whose received C-STORE datasets are written under ``receive_dir``."""

    receive_dir: Path | None = None


def _decode_msg(self: Any, primitive: P_DATA, assoc: Any = None) -> bool:
    """pynetdicom's DIMSEMessage.decode_msg: temporary files in receive_dir, UIDs optional."""
    if primitive.__class__ != P_DATA or primitive is None:
        return False

    for context_id, data in primitive.presentation_data_value_list:
        control_header_byte = data[0]
        if control_header_byte & 1:
            self.encoded_command_set.write(data[1:])
            if control_header_byte & 2:
                self.context_id = context_id
                self.command_set = decode(self.encoded_command_set, True, True)
                self.__class__ = _MESSAGE_TYPES[cast(int, self.command_set.CommandField)][1]
                if self.command_set.CommandDataSetType == NO_DATASET:
                    return True
                if _config.STORE_RECV_CHUNKED_DATASET and isinstance(self, C_STORE_RQ):
                    _open_dataset_file(self, assoc, context_id)
        else:
            if self._data_set_file:
                self._data_set_file.write(data[1:])
                self._data_set_file.file.flush()
            else:
                self.data_set.write(data[1:])
            if control_header_byte & 2 != 0:
                return True
    return False


def _open_dataset_file(message: Any, assoc: Any, context_id: int) -> None:
    directory = getattr(getattr(assoc, "ae", None), "receive_dir", None)
    message._data_set_file = NamedTemporaryFile(  # noqa: SIM115 (pynetdicom closes it)
        delete=False, mode="wb", suffix=RECEIVED_SUFFIX, dir=directory
    )
    message._data_set_path = Path(message._data_set_file.name)
    message._data_set_file.write(b"\x00" * 128)
    message._data_set_file.write(b"DICM")
    cs = message.command_set
    sop_class = str(cs.get("AffectedSOPClassUID") or "")
    sop_instance = str(cs.get("AffectedSOPInstanceUID") or "")
    meta = create_file_meta(
        sop_class_uid=UID(sop_class),
        sop_instance_uid=UID(sop_instance),
        transfer_syntax=assoc._accepted_cx[context_id].transfer_syntax[0],
    )
    # Without an instance UID, write the header unchecked: the handler answers 0xC001
    # before reading the file. Without a class UID no handler can be chosen: the check
    # raises and the association is aborted (below), its file removed.
    write_file_meta_info(message._data_set_file, meta, enforce_standard=bool(sop_instance))


def _receive_primitive(self: Any, primitive: P_DATA) -> None:
    """pynetdicom's receive_primitive; an error aborts the association instead of its thread."""
    try:
        _original_receive_primitive(self, primitive)
    except Exception:
        LOGGER.exception("received DIMSE message could not be decoded: aborting")
        discard_partial_dataset(self)
        self.message = None
        self.dul.event_queue.put(INVALID_PDU_EVENT)


def _serve_request(self: Any, msg: Any, context_id: int) -> None:
    """pynetdicom's _serve_request; a C-STORE without Affected SOP Instance UID reaches our handler.

    pynetdicom stores an empty UID as None and drops such a request as invalid, unanswered:
    an empty UID lets it through to the handler, which answers 0xC001.
    """
    if isinstance(msg, C_STORE) and msg.MessageIDBeingRespondedTo is None:
        if msg.AffectedSOPInstanceUID is None:
            msg._affected_sop_instance_uid = UID("")
        if not msg.is_valid_request:  # dropped by pynetdicom: its file would stay behind
            _remove_file(getattr(msg, "_dataset_file", None))
    _original_serve_request(self, msg, context_id)


def _remove_file(handle: Any) -> None:
    if handle is None:
        return
    with contextlib.suppress(OSError):
        handle.close()
    with contextlib.suppress(OSError):
        os.unlink(handle.name)


def discard_partial_dataset(dimse: Any) -> None:
    """Close and remove the file of a dataset still being received (association ending)."""
    message: Any = getattr(dimse, "message", None)
    handle = getattr(message, "_data_set_file", None)
    if message is None or handle is None:
        return
    message._data_set_file = None
    _remove_file(handle)


def install_receive_fix() -> bool:
    """Replace pynetdicom's dataset receiving with the fixed one (only on the pinned version)."""
    if getattr(DIMSEMessage, _INSTALLED, False):
        return True
    if pynetdicom.__version__ != FIXED_VERSION:
        LOGGER.warning(
            "pynetdicom receive fix not applied to this version",
            extra={"version": pynetdicom.__version__, "fixed": FIXED_VERSION},
        )
        return False
    DIMSEMessage.decode_msg = _decode_msg  # type: ignore[method-assign]
    DIMSEServiceProvider.receive_primitive = _receive_primitive  # type: ignore[method-assign]
    Association._serve_request = _serve_request  # type: ignore[method-assign]
    setattr(DIMSEMessage, _INSTALLED, True)
    return True
