"""The Python floor: a bare pynetdicom Storage SCP that only writes files.

It accepts every Storage SOP class in every transfer syntax pynetdicom knows, writes
``event.encoded_dataset()`` (File Meta header + the dataset as received) to one file per
instance, and answers success. No fsync, no database, no validation: whatever the gateway
adds on top of this (durability, indexing, checks) is the cost to compare against it.

Run: ``python -m bench.floor_scp --port 11113 --output-dir /tmp/x [--max-pdu 0]``.
"""

from __future__ import annotations

import argparse
import collections
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

P_DATA_TF = 0x04


def build_ae(ae_title: str, max_pdu: int) -> AE:
    """An AE accepting all storage contexts in every transfer syntax, plus Verification."""
    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = max_pdu
    ae.maximum_associations = 64
    ae.require_called_aet = False
    for context in AllStoragePresentationContexts:
        assert context.abstract_syntax is not None
        ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    return ae


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ae-title", default="FLOOR")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument(
        "--max-pdu", type=int, default=0, help="maximum PDU size we receive (0 = unlimited)"
    )
    parser.add_argument(
        "--chunked",
        action="store_true",
        help="pynetdicom STORE_RECV_CHUNKED_DATASET: spool each dataset to a temp file",
    )
    parser.add_argument(
        "--pdu-stats", action="store_true", help="print the sizes of received P-DATA PDUs on exit"
    )
    args = parser.parse_args(argv)

    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    _config.STORE_RECV_CHUNKED_DATASET = args.chunked
    out: Path = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    pdu_sizes: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()

    def on_store(event: Any) -> int:
        sop_uid = event.request.AffectedSOPInstanceUID
        (out / f"{sop_uid}.dcm").write_bytes(event.encoded_dataset())
        return 0x0000

    def on_pdu(event: Any) -> None:
        data: bytes = event.data
        if data and data[0] == P_DATA_TF:
            with lock:
                pdu_sizes[len(data)] += 1

    handlers: list[Any] = [(evt.EVT_C_STORE, on_store)]
    if args.pdu_stats:
        handlers.append((evt.EVT_DATA_RECV, on_pdu))

    ae = build_ae(args.ae_title, args.max_pdu)
    server = ae.start_server((args.host, args.port), block=False, evt_handlers=handlers)
    assert server is not None
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"floor SCP listening on {args.host}:{args.port} (max PDU {args.max_pdu})", flush=True)
    try:
        stopping.wait()
    finally:
        server.shutdown()
        if args.pdu_stats:
            common = ", ".join(f"{size} B x{n}" for size, n in pdu_sizes.most_common(5))
            print(f"P-DATA-TF PDUs received (most common sizes): {common}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
