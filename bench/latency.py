"""Appearance latency alone: last acknowledged instance -> study listed as ``receiving``.

    python -m bench.latency

See bench/README.md ("Ingest benchmark", step 5) for what is measured.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.shared.appearance import LatencyProbe
from bench.shared.procs import REGISTRY, install_signal_handlers


def main() -> int:
    """Run the probe alone (``python -m bench.latency``)."""
    install_signal_handlers()
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        try:
            result = LatencyProbe(Path(tmp)).run()
        finally:
            REGISTRY.stop_all()
    print(
        f"appearance latency: median {result.median * 1000:.0f} ms, "
        f"max {result.maximum * 1000:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
