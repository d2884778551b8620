"""``GET /api/v1/alerts/stream?ticket=``: a trust's alert screen in a browser, no header."""

from __future__ import annotations

from tests.alerts.conftest import LiveApi, Network


def test_an_alert_client_with_a_ticket_and_no_header_receives_its_trusts_alerts(
    live_api: LiveApi, network: Network
) -> None:
    issued = live_api.http.post("/api/v1/auth/stream-ticket", headers=network["alert_a"])
    assert issued.status_code == 200, issued.text
    ticket = issued.json()["ticket"]

    with live_api.sse({}, params={"ticket": ticket}) as reader:
        alert = live_api.raise_alert(network["rad_b"], network.study_uid)
        [raised] = reader.events(1)

    assert raised.data is not None
    assert (raised.event, raised.data["id"]) == ("alert.raised", alert["id"])
    # The same ticket is no key to the rest of the alerts API.
    listed = live_api.http.get("/api/v1/alerts", headers={"Authorization": f"Bearer {ticket}"})
    assert listed.status_code == 401
