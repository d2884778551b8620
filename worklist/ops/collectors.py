"""Prometheus collectors over numbers read from the database at scrape time.

Every process (and every API replica) reports the same database-derived values, so
they are computed per scrape rather than kept in process counters. Series are
zero-filled for every site (and category or channel), so a rate or an alert rule
sees a 0 before the first event rather than no series at all.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from worklist.enums import AlertCategory, DeliveryChannel
from worklist.ops.repository import AlertCount, BacklogCount, DeliverySnapshot


class BacklogCollector(Collector):
    """Backlog gauges from counts taken at scrape time."""

    def __init__(self, counts: list[BacklogCount]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        """Yield ``worklist_backlog_studies{site,priority,status}``."""
        gauge = GaugeMetricFamily(
            "worklist_backlog_studies",
            "Studies awaiting report, by site, priority and status",
            labels=["site", "priority", "status"],
        )
        for row in self._counts:
            gauge.add_metric([row.site, row.priority.value, row.status.value], row.count)
        yield gauge


class DeliveryCollector(Collector):
    """Alert acknowledgement breaches, open alerts, the outbox backlog, disabled endpoints."""

    def __init__(self, snapshot: DeliverySnapshot) -> None:
        self._snapshot = snapshot
        self._codes = {site.id: site.code for site in snapshot.sites}
        # Active sites get zero-filled series; others appear only while they have data.
        self._listed = [site.id for site in snapshot.sites if site.active]

    def _site_ids(self, seen: Iterable[int]) -> list[int]:
        return list(dict.fromkeys([*self._listed, *(i for i in seen if i in self._codes)]))

    def _by_category(
        self, family: CounterMetricFamily | GaugeMetricFamily, counts: list[AlertCount]
    ) -> None:
        values = {(row.site_id, row.category): row.count for row in counts}
        for site_id in self._site_ids(row.site_id for row in counts):
            for category in AlertCategory:
                count = values.get((site_id, category), 0)
                family.add_metric([self._codes[site_id], category.value], count)

    def collect(self) -> Iterable[Metric]:
        """Yield the alert and delivery families (see the help text of each)."""
        snapshot = self._snapshot
        breaches = CounterMetricFamily(
            "worklist_alert_ack_breaches",
            "Alert acknowledgement deadlines missed (breaches recorded), by site and category",
            labels=["site", "category"],
        )
        self._by_category(breaches, snapshot.breaches)
        yield breaches

        open_alerts = GaugeMetricFamily(
            "worklist_alerts_open",
            "Alerts not yet acknowledged, by site and category",
            labels=["site", "category"],
        )
        self._by_category(open_alerts, snapshot.open_alerts)
        yield open_alerts

        pending = GaugeMetricFamily(
            "worklist_deliveries_pending",
            "Outbox deliveries not yet delivered, by site and channel",
            labels=["site", "channel"],
        )
        oldest = GaugeMetricFamily(
            "worklist_delivery_oldest_pending_seconds",
            "Age of the oldest undelivered outbox delivery (0 when none), by site and channel",
            labels=["site", "channel"],
        )
        rows = {(row.site_id, row.channel): row for row in snapshot.pending}
        for site_id in self._site_ids(row.site_id for row in snapshot.pending):
            for channel in DeliveryChannel:
                row = rows.get((site_id, channel))
                labels = [self._codes[site_id], channel.value]
                pending.add_metric(labels, row.count if row else 0)
                oldest.add_metric(labels, row.oldest_seconds if row else 0.0)
        yield pending
        yield oldest

        failed = GaugeMetricFamily(
            "worklist_deliveries_failed",
            "Outbox deliveries the receiver refused for good (HL7 AR: never retried), "
            "by site and channel",
            labels=["site", "channel"],
        )
        counts = {(row.site_id, row.channel): row.count for row in snapshot.failed}
        for site_id in self._site_ids(row.site_id for row in snapshot.failed):
            for channel in DeliveryChannel:
                failed.add_metric(
                    [self._codes[site_id], channel.value], counts.get((site_id, channel), 0)
                )
        yield failed

        disabled = GaugeMetricFamily(
            "worklist_webhook_endpoint_disabled",
            "1 when the site's webhook endpoint was disabled by a 410 Gone, else 0",
            labels=["site"],
        )
        for site in snapshot.sites:
            if site.webhook_configured:
                disabled.add_metric([site.code], 1 if site.webhook_disabled else 0)
        yield disabled
