"""The ``hl7`` delivery channel: ORU^R01 to each trust's RIS over MLLP.

Driven by the outbox dispatcher like webhooks (leases, backoff, attempts recorded): one
message in flight per trust, each on its own connection, in release order per study
(``repository.HL7_CANDIDATES``). The ORU is rendered at send time from the outbox
message and the study's order; a message that cannot be rendered is retried (and
logged), never dropped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from worklist.config import Settings
from worklist.enums import DeliveryChannel
from worklist.metrics import HL7_RESULT_ATTEMPTS
from worklist.outbox import repository as outbox
from worklist.outbox.repository import ClaimedDelivery
from worklist.outbox.sender import AttemptResult
from worklist.results import mllp, repository
from worklist.results.oru import Envelope, OrderNumbers, build_oru, control_id

log = logging.getLogger(__name__)

# Sends in flight per dispatcher; one per trust, so its RIS sees them one at a time.
CONCURRENCY = 4
PER_SITE = 1


def mllp_url(host: str, port: int) -> str:
    """Where an attempt went, as ``delivery_attempts.url`` records it."""
    return f"mllp://[{host}]:{port}" if ":" in host else f"mllp://{host}:{port}"


@dataclass(frozen=True)
class ClaimedResult(ClaimedDelivery):
    """An hl7 delivery held by this worker, with its RIS and the study's order."""

    host: str = ""
    port: int = 0
    receiving_facility: str = ""
    order: OrderNumbers | None = field(default=None, repr=False)


class Hl7Channel:
    """ORU^R01 results over MLLP; ``AR`` fails a delivery for good."""

    kind = DeliveryChannel.HL7
    noun = "HL7 result"
    plural = "HL7 results"
    concurrency = CONCURRENCY
    per_site = PER_SITE

    def __init__(self, settings: Settings) -> None:
        self.timeout = settings.ris_timeout_seconds
        self.lease_seconds = 2 * self.timeout + 5
        self.sending_facility = settings.gateway_ae_title

    async def claim(
        self, session: AsyncSession, *, limit: int, busy: Mapping[int, int]
    ) -> Sequence[ClaimedDelivery]:
        """Due hl7 deliveries of sites with a RIS target, with what their ORU needs."""
        leased = await outbox.lease_due(
            session,
            repository.HL7_CANDIDATES,
            limit=limit,
            lease_seconds=self.lease_seconds,
            per_site=self.per_site,
            busy=busy,
        )
        orders = await repository.orders_of_studies(
            session, (row.study_id for row in leased if row.study_id is not None)
        )
        facilities = await repository.facilities_of_sites(session, (row.site_id for row in leased))
        claimed: list[ClaimedDelivery] = []
        for row in leased:
            host, port = row.ris_host or "", row.ris_port or 0
            claimed.append(
                ClaimedResult(
                    delivery_id=row.delivery_id,
                    lease_token=row.lease_token,
                    attempts=row.attempts,
                    webhook_id=row.webhook_id,
                    event_type=row.event_type,
                    body=row.body,
                    created_at=row.created_at,
                    site_id=row.site_id,
                    site_code=row.site_code,
                    url=mllp_url(host, port),
                    secrets=(),
                    host=host,
                    port=port,
                    receiving_facility=facilities.get(row.site_id, row.site_code),
                    order=orders.get(row.study_id) if row.study_id is not None else None,
                )
            )
        return claimed

    async def seconds_until_next_due(
        self, session: AsyncSession, *, full_sites: Sequence[int]
    ) -> float | None:
        """When the next hl7 delivery may go."""
        return await outbox.seconds_until_next_due(
            session, full_sites=full_sites, statement=repository.HL7_NEXT_DUE
        )

    def render(self, claimed: ClaimedResult) -> str:
        """The ORU^R01 of a claimed delivery (the same on every try)."""
        envelope = Envelope(
            control_id=control_id(claimed.webhook_id),
            created_at=claimed.created_at,
            sending_facility=self.sending_facility,
            receiving_facility=claimed.receiving_facility,
        )
        return build_oru(envelope=envelope, payload=json.loads(claimed.body), order=claimed.order)

    async def send(self, claimed: ClaimedDelivery) -> AttemptResult:
        """Render and send the ORU, and classify the acknowledgement."""
        if not isinstance(claimed, ClaimedResult):
            raise TypeError("the hl7 channel sends only what it claimed")
        try:
            message = self.render(claimed)
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            # A bug or an unexpected body: keep it (retried with backoff) and say so.
            log.error(
                "HL7 result could not be rendered",
                extra={"webhook_id": claimed.webhook_id, "error": type(exc).__name__},
            )
            result = AttemptResult(
                datetime.now(UTC),
                0.0,
                outbox.OUTCOME_ERROR,
                error=f"not sent: the ORU could not be built ({type(exc).__name__})",
            )
        else:
            result = await mllp.send_message(
                claimed.host,
                claimed.port,
                message,
                control_id=control_id(claimed.webhook_id),
                timeout=self.timeout,
            )
        HL7_RESULT_ATTEMPTS.labels(claimed.site_code, result.outcome).inc()
        return result

    async def after_attempt(
        self, session: AsyncSession, claimed: ClaimedDelivery, result: AttemptResult
    ) -> None:
        """Nothing beyond the delivery row: a refusal is shown by its status."""
