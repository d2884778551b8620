"""C-STORE sub-operations of C-MOVE / C-GET sent from the stored files, as stored.

pynetdicom's retrieve loop only takes a decoded ``Dataset`` from the handler and then
re-encodes it for every sub-operation: most of a retrieval's CPU, and the bytes sent are
a re-encoding rather than what the site pushed. The handlers instead hand it a
``StoredFile`` marker; ``send_stored_files`` (installed once per gateway process) makes
``Association.send_c_store`` send such a marker from its file in chunks, byte-for-byte,
when the peer accepted the file's own transfer syntax, and decodes it only when the peer
needs a conversion (e.g. an explicit VR file to an implicit-VR-only destination).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import _config
from pynetdicom.association import Association

_INSTALLED = "_worklist_sends_stored_files"


class StoredFile(Dataset):
    """A stored instance to send: its SOP identity, its file and its transfer syntax."""

    def __init__(self, path: Path, sop_class_uid: str, sop_instance_uid: str) -> None:
        super().__init__()
        self.SOPClassUID = sop_class_uid
        self.SOPInstanceUID = sop_instance_uid
        object.__setattr__(self, "stored_path", path)

    def decoded(self) -> Dataset:
        """The instance read from its file (for peers that need a conversion)."""
        return dcmread(object.__getattribute__(self, "stored_path"))


def send_stored_files() -> None:
    """Make ``Association.send_c_store`` send ``StoredFile`` markers from their files."""
    if getattr(Association, _INSTALLED, False):
        return
    # Sending from a path streams the file after its meta header instead of decoding it.
    _config.STORE_SEND_CHUNKED_DATASET = True
    original = Association.send_c_store

    @functools.wraps(original)
    def send_c_store(self: Association, dataset: Any, *args: Any, **kwargs: Any) -> Dataset:
        if isinstance(dataset, StoredFile):
            try:
                return original(
                    self, object.__getattribute__(dataset, "stored_path"), *args, **kwargs
                )
            except ValueError:  # no context for the stored transfer syntax: convert
                return original(self, dataset.decoded(), *args, **kwargs)
        return original(self, dataset, *args, **kwargs)

    Association.send_c_store = send_c_store  # type: ignore[method-assign]
    setattr(Association, _INSTALLED, True)
