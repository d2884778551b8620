"""A trust's webhook endpoint as its manager sees and changes it (never its secret, except once)."""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field

# A rollover longer than this would keep a possibly leaked secret valid for too long.
MAX_OVERLAP_SECONDS = 30 * 86400
MAX_URL_LENGTH = 2048
RECENT_ATTEMPTS = 20


class WebhookState(enum.StrEnum):
    """Whether the trust's endpoint receives deliveries."""

    ACTIVE = "active"
    # It answered 410 Gone: deliveries are held until a manager re-enables it.
    DISABLED = "disabled"
    # Its URL was removed: deliveries are held until a URL is set again.
    REMOVED = "removed"
    NOT_CONFIGURED = "not_configured"


class SiteRef(BaseModel):
    """A trust by code and name."""

    code: str
    name: str


class WebhookAttemptOut(BaseModel):
    """One recorded delivery attempt to the endpoint."""

    at: AwareDatetime
    webhook_id: str
    event: str
    status_code: int | None
    outcome: str
    error: str | None


class FailedDeliveryOut(BaseModel):
    """A delivery the receiver refused for good (HL7 ``AR``): never retried."""

    webhook_id: str
    event: str
    failed_at: AwareDatetime | None
    error: str | None


class RisStatusOut(BaseModel):
    """Where the trust's results go as ORU^R01 over MLLP, and how their delivery stands."""

    host: str | None
    port: int | None
    pending_deliveries: int
    oldest_pending_at: AwareDatetime | None
    failed_deliveries: int = Field(description="Results the RIS refused (AR): not retried")
    recent_failures: list[FailedDeliveryOut]
    recent_attempts: list[WebhookAttemptOut]


class WebhookStatusOut(BaseModel):
    """The endpoint's configuration, state, backlog and latest attempts (newest first),
    and the same for results sent to the trust's RIS (``ris``)."""

    site: SiteRef
    url: str | None
    status: WebhookState
    secret_configured: bool
    disabled_at: AwareDatetime | None
    disabled_reason: str | None
    secret_rollover_until: AwareDatetime | None = Field(
        description="While set, deliveries are signed with the previous secret too"
    )
    pending_deliveries: int
    oldest_pending_at: AwareDatetime | None
    recent_attempts: list[WebhookAttemptOut]
    ris: RisStatusOut


class WebhookUrlIn(BaseModel):
    """Where the trust wants its alerts and results POSTed (http or https)."""

    url: Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH)]


class WebhookChangeOut(WebhookStatusOut):
    """The endpoint after a change; ``secret`` only when one was issued (shown once)."""

    secret: str | None = Field(
        default=None, description="The new signing secret (whsec_...), shown this once only"
    )


class RotateSecretIn(BaseModel):
    """How long the current secret stays valid beside the new one (default: the setting)."""

    overlap_seconds: Annotated[float | None, Field(ge=0, le=MAX_OVERLAP_SECONDS)] = None


class SecretRotationOut(BaseModel):
    """The new secret (shown once) and until when the previous one still signs."""

    secret: str
    previous_valid_until: AwareDatetime | None
