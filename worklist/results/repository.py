"""SQL of HL7 results delivery: which ``hl7`` deliveries are due, and what their ORU needs.

A study's results reach its RIS in the order they were released: a delivery waits while
an earlier ``hl7`` delivery of the same study is still pending, so an amendment (``C``)
never overtakes the final report (``F``) it corrects. A failed (refused) one no longer
holds the next back.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.models import Hl7Sender, Order, Study
from worklist.results.oru import OrderNumbers

# Unleased hl7 deliveries of sites with a RIS target that may go now: no earlier one of
# the same study still pending.
_SENDABLE = """
FROM deliveries d
JOIN sites s ON s.id = d.site_id
JOIN outbox_messages m ON m.id = d.message_id
WHERE d.status = 'pending'
  AND d.channel = 'hl7'
  AND (d.lease_expires_at IS NULL OR d.lease_expires_at < now())
  AND s.ris_host IS NOT NULL
  AND s.ris_port IS NOT NULL
  AND d.site_id <> ALL(CAST(:full_sites AS integer[]))
  AND NOT EXISTS (
      SELECT 1
      FROM deliveries earlier
      JOIN outbox_messages em ON em.id = earlier.message_id
      WHERE earlier.status = 'pending'
        AND earlier.channel = 'hl7'
        AND earlier.site_id = d.site_id
        AND earlier.id < d.id
        AND em.study_id = m.study_id
  )
"""

# Those due, oldest due first (``lease_due`` takes them).
HL7_CANDIDATES = text(
    "SELECT d.id, d.site_id"
    + _SENDABLE
    + """  AND d.next_attempt_at <= now()
ORDER BY d.next_attempt_at, d.id
LIMIT :scan
FOR UPDATE OF d SKIP LOCKED
"""
)

# When the earliest of them falls due.
HL7_NEXT_DUE = text(
    "SELECT extract(epoch FROM d.next_attempt_at - now())"
    + _SENDABLE
    + """ORDER BY d.next_attempt_at
LIMIT 1
"""
)


async def orders_of_studies(
    session: AsyncSession, study_ids: Iterable[int]
) -> dict[int, OrderNumbers]:
    """The order numbers of each study that has an order, by study id."""
    ids = sorted(set(study_ids))
    if not ids:
        return {}
    stmt = select(Study.id, Order).join(Order, Order.id == Study.order_id).where(Study.id.in_(ids))
    return {
        study_id: OrderNumbers(
            accession_number=order.accession_number,
            placer_order_number=order.placer_order_number,
            filler_order_number=order.filler_order_number,
            procedure_code=order.procedure_code,
            procedure_coding_system=order.procedure_coding_system,
            procedure_name=order.procedure_name,
            patient_source=order.patient_source,
            patient_identifiers=tuple(order.patient_identifiers or ()),
        )
        for study_id, order in await session.execute(stmt)
    }


async def facilities_of_sites(session: AsyncSession, site_ids: Iterable[int]) -> dict[int, str]:
    """Each site's RIS facility (the first MSH-4 registered for it), by site id."""
    ids = sorted(set(site_ids))
    if not ids:
        return {}
    stmt = (
        select(Hl7Sender.site_id, Hl7Sender.facility)
        .where(Hl7Sender.site_id.in_(ids))
        .order_by(Hl7Sender.site_id, Hl7Sender.facility)
    )
    facilities: dict[int, str] = {}
    for site_id, facility in await session.execute(stmt):
        facilities.setdefault(site_id, facility)
    return facilities
