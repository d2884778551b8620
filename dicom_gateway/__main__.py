"""``python -m dicom_gateway``: run the gateway alone until SIGINT/SIGTERM."""

from __future__ import annotations

import sys

from dicom_gateway.processes import serve
from worklist.config import ConfigError, Settings
from worklist.logs import configure_logging


def main() -> int:
    """Run the gateway with settings from the environment."""
    try:
        settings = Settings()
        configure_logging(settings.log_level)
        return serve(settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
