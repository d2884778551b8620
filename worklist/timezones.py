"""The zone of the network's wall clocks.

DICOM dates and times carry no zone; every member trust is in England, so the gateway
reads them, and C-FIND, QIDO-RS and date filters match them, as Europe/London times.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

SITE_TIMEZONE = ZoneInfo("Europe/London")
