"""Prometheus metrics shared by the gateway, the API and the worker.

When ``PROMETHEUS_MULTIPROC_DIR`` is set (``worklist up`` sets it), every process
writes its samples there and ``/metrics`` on the API aggregates them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import REGISTRY

INGEST_INSTANCES = Counter(
    "worklist_ingest_instances_total",
    "Instances received by the gateway, by site and outcome",
    ["site", "outcome"],
)
INGEST_BYTES = Counter("worklist_ingest_bytes_total", "Bytes stored by the gateway", ["site"])
INGEST_LATENCY = Histogram(
    "worklist_ingest_seconds",
    "Time from a complete C-STORE dataset to its durable acknowledgement",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
INGEST_BATCH_SIZE = Histogram(
    "worklist_ingest_commit_batch_size",
    "Instances indexed per group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
ASSOCIATIONS = Counter(
    "worklist_gateway_associations_total", "Associations by outcome", ["outcome"]
)
API_LATENCY = Histogram(
    "worklist_api_request_seconds",
    "API request latency by route template and status class",
    ["method", "route", "status"],
    buckets=(0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
STUDIES_PROMOTED = Counter(
    "worklist_studies_ready_total", "Studies promoted from receiving to ready by the worker"
)
# Orders in over HL7 v2 (worklist hl7). No facility label: it comes from strangers too.
HL7_MESSAGES = Counter(
    "worklist_hl7_messages_total", "HL7 order messages by acknowledgement (AA, AE, AR)", ["ack"]
)
HL7_LATENCY = Histogram(
    "worklist_hl7_ack_seconds",
    "Time from a complete HL7 message to its acknowledgement (after the commit)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def render_process_metrics() -> bytes:
    """Metrics of every process (multiprocess mode) or of this one."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


# Outbox delivery (the worker's dispatcher and the alert streams).
WEBHOOK_ATTEMPTS = Counter(
    "worklist_webhook_attempts_total",
    "Webhook delivery attempts by site and outcome (delivered, failed, gone, timeout, error)",
    ["site", "outcome"],
)
HL7_RESULT_ATTEMPTS = Counter(
    "worklist_hl7_result_attempts_total",
    "ORU^R01 delivery attempts to the trusts' RIS by site and outcome "
    "(delivered, failed: AE, rejected: AR, timeout, error)",
    ["site", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "worklist_delivery_latency_seconds",
    "Time from an outbox message's commit to its delivery, by channel",
    ["channel"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
ALERT_ESCALATIONS = Counter(
    "worklist_alert_escalations_total",
    "Alerts escalated by the worker after a missed acknowledgement deadline",
    ["site", "category"],
)
