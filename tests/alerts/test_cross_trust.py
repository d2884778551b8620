"""The cross-trust alert, end to end over real sockets: a trust B radiologist finds a bleed on
trust A's scan; trust A's webhook and alert stream receive it, trust C sees nothing, and
trust A's acknowledgement is recorded once."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from tests.alerts.conftest import (
    TRUST_A,
    LiveApi,
    Network,
    deliveries,
    messages,
    running_dispatcher,
    stream_position,
    wait_until,
)
from tests.receiver import WebhookReceiver
from worklist.config import Settings
from worklist.enums import DeliveryStatus

TRUST_C_STAFF = ("alert_c", "manager_c", "rad_c")


def test_a_critical_alert_from_trust_b_reaches_trust_a_only_and_is_acknowledged_once(
    live_api: LiveApi,
    network: Network,
    db: sessionmaker[Session],
    settings: Settings,
    webhook_receiver: WebhookReceiver,
) -> None:
    http = live_api.http
    with (
        running_dispatcher(settings),
        live_api.sse(network["alert_a"]) as trust_a,
        live_api.sse(network["alert_c"]) as trust_c,
        live_api.sse(network["manager_c"]) as trust_c_manager,
    ):
        alert = live_api.raise_alert(
            network["rad_b"], network.study_uid, recipient="On-call neurosurgery registrar"
        )
        alert_id = alert["id"]
        assert alert["site"]["code"] == TRUST_A
        assert alert["raised_by"] == "rad_b"

        # Trust A's webhook: signed with A's secret (the receiver verified it).
        [hook] = webhook_receiver.wait_accepted(1)
        [raised_message] = messages(db, alert_id)
        assert hook.verified
        assert hook.type == "alert.raised"
        assert hook.webhook_id == raised_message.webhook_id
        assert hook.headers["webhook-signature"].startswith("v1,")
        assert hook.headers["webhook-timestamp"].isdigit()
        assert hook.body.decode() == raised_message.body
        assert hook.payload["data"]["id"] == alert_id
        assert hook.payload["data"]["finding"] == alert["finding"]

        # Trust A's alert stream.
        [event] = trust_a.events(1)
        assert (event.id, event.event) == (stream_position(db, raised_message.id), "alert.raised")
        assert event.data == hook.payload["data"]

        # Trust C: the alert does not exist.
        for who in TRUST_C_STAFF:
            assert http.get(f"/api/v1/alerts/{alert_id}", headers=network[who]).status_code == 404
            listed = http.get("/api/v1/alerts", headers=network[who]).json()["items"]
            assert alert_id not in {item["id"] for item in listed}
            refused = http.post(
                f"/api/v1/alerts/{alert_id}/acknowledge",
                json={"acknowledged_by": "Dr Wrong Trust"},
                headers=network[who],
            )
            assert refused.status_code == 404

        # Trust A acknowledges once; a repeat is the same answer and sends nothing new.
        first = http.post(
            f"/api/v1/alerts/{alert_id}/acknowledge",
            json={"acknowledged_by": "Dr A. Consultant", "note": "Patient to theatre."},
            headers=network["alert_a"],
        )
        again = http.post(
            f"/api/v1/alerts/{alert_id}/acknowledge",
            json={"acknowledged_by": "Dr A. Consultant"},
            headers=network["alert_a"],
        )
        assert first.status_code == again.status_code == 200
        assert first.json()["status"] == "acknowledged"
        assert again.json()["acknowledged_at"] == first.json()["acknowledged_at"]
        assert again.json()["acknowledgement_note"] == "Patient to theatre."

        [acknowledged] = trust_a.events(1)
        assert acknowledged.event == "alert.acknowledged"
        accepted = webhook_receiver.wait_accepted(2)
        assert [r.type for r in accepted] == ["alert.raised", "alert.acknowledged"]
        assert all(r.verified for r in webhook_receiver.requests)

        # Trust C's streams stayed silent throughout.
        assert trust_c.next_event(timeout=0.5) is None
        assert trust_c_manager.next_event(timeout=0.1) is None

    assert [m.type for m in messages(db, alert_id)] == ["alert.raised", "alert.acknowledged"]
    assert len({r.webhook_id for r in webhook_receiver.requests}) == 2

    def all_delivered() -> bool:
        return all(d.status is DeliveryStatus.DELIVERED for d in deliveries(db, alert_id))

    wait_until(all_delivered, what="every delivery of the alert recorded as delivered")
    shown = http.get(f"/api/v1/alerts/{alert_id}", headers=network["rad_b"]).json()
    assert {(d["event"], d["channel"], d["status"]) for d in shown["deliveries"]} == {
        ("alert.raised", "webhook", "delivered"),
        ("alert.raised", "sse", "delivered"),
        ("alert.acknowledged", "webhook", "delivered"),
        ("alert.acknowledged", "sse", "delivered"),
    }
    assert shown["status"] == "acknowledged"
