"""``python -m dicom_gateway``: run the gateway alone until SIGINT/SIGTERM."""

from __future__ import annotations

import signal
import sys
from types import FrameType

from dicom_gateway.server import build_gateway
from worklist.config import ConfigError, Settings
from worklist.logs import configure_logging


def main() -> int:
    """Run the gateway with settings from the environment."""
    settings = Settings()
    configure_logging(settings.log_level)
    try:
        gateway = build_gateway(settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        gateway.shutdown()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    gateway.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
