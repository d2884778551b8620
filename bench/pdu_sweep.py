"""Does the receiver's maximum PDU size (or spooling to disk) change the Python floor?

    python -m bench.pdu_sweep [--repeat 5] [--associations 1,4] [--gateway]

Pushes the ingest data set with DCMTK storescu to variants of the pynetdicom floor
(maximum_pdu_size 0 / 16384 / 131072, in memory or with STORE_RECV_CHUNKED_DATASET),
and with ``--gateway`` to the gateway at WORKLIST_GATEWAY_MAX_PDU 0 / 16384, interleaved
so machine noise hits every variant alike. First an untimed pass records the P-DATA-TF
PDU sizes storescu actually sends for each floor PDU setting.
"""

from __future__ import annotations

import argparse
import functools
import re
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.dataset import load_or_generate
from bench.shared import prereqs
from bench.shared.procs import REGISTRY, install_signal_handlers
from bench.shared.push import RunResult, push, run_once
from bench.shared.services import gateway_available
from bench.shared.targets import FloorTarget, GatewayTarget, Target

PDU_SIZES = (0, 16384, 131072)


def observed_pdus(workdir: Path, max_pdu: int) -> str:
    """The P-DATA-TF sizes storescu sends to a floor announcing ``max_pdu``."""
    data = load_or_generate(log=False)
    target = FloorTarget(workdir / f"stats-{max_pdu}", max_pdu=max_pdu, pdu_stats=True)
    try:
        target.start()
        push(target, [list(data.files[:3])], workdir, f"stats-{max_pdu}")
    finally:
        server = target.server
        target.stop()
    text = server.log_path.read_text() if server is not None else ""
    match = re.search(r"P-DATA-TF PDUs received \(most common sizes\): (.*)", text)
    return match.group(1) if match else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pdu_sweep", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--associations", default="1,4")
    parser.add_argument("--gateway", action="store_true", help="also sweep the gateway's PDU")
    args = parser.parse_args(argv)
    prereqs.require("bench.pdu_sweep", [prereqs.DCMTK])
    install_signal_handlers()
    data = load_or_generate()
    workdir = Path(tempfile.mkdtemp(prefix="bench-pdu-"))
    variants: dict[str, Callable[[Path], Target]] = {}
    for pdu in PDU_SIZES:
        for chunked in (False, True):
            label = f"floor pdu={pdu}{' chunked' if chunked else ''}"
            variants[label] = functools.partial(FloorTarget, max_pdu=pdu, chunked=chunked)
    if args.gateway and gateway_available():
        for pdu in (0, 16384):
            variants[f"gateway pdu={pdu}"] = functools.partial(GatewayTarget, max_pdu=pdu)
    try:
        for pdu in PDU_SIZES:
            print(f"floor announces max PDU {pdu}: storescu sends {observed_pdus(workdir, pdu)}")
        for associations in (int(a) for a in args.associations.split(",")):
            runs: dict[str, list[RunResult]] = {label: [] for label in variants}
            for rep in range(args.repeat):
                for label, factory in variants.items():
                    target = factory(workdir / "t")
                    tag = f"{label.replace(' ', '_')}-{associations}-{rep}"
                    runs[label].append(run_once(target, data, associations, workdir, tag))
            print(f"\n{associations} association(s), median of {args.repeat}:")
            print(f"{'variant':<28} {'seconds':>8} {'inst/s':>8} {'rx CPU s':>9}")
            for label, results in runs.items():
                seconds = statistics.median(r.seconds for r in results)
                cpu = statistics.median(r.receiver_cpu for r in results)
                print(f"{label:<28} {seconds:>8.3f} {data.count / seconds:>8.1f} {cpu:>9.2f}")
    finally:
        REGISTRY.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        REGISTRY.stop_all()
        sys.exit(130)
