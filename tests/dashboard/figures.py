"""Stats JSON of DESIGN's "Network performance" shapes, for pages the tests serve by hand.

``FIXED`` is a two-trust network with figures chosen so the page's sums can be checked by
hand; ``of_network`` describes the rows ``conftest.network`` commits, so a test reads the
same figures from these or from the real endpoints once they are there.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.dashboard.conftest import NORTH, SOUTH, Network


def fixed(breaches: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures with something in every chart, for both trusts."""
    return {
        "backlog": {
            "cells": [
                {"site": NORTH, "priority": "stat", "age_band": "<1d", "count": 2},
                {"site": NORTH, "priority": "routine", "age_band": "7-28d", "count": 3},
                {"site": NORTH, "priority": "routine", "age_band": ">28d", "count": 1},
                {"site": SOUTH, "priority": "urgent", "age_band": "1-3d", "count": 4},
                {"site": SOUTH, "priority": "routine", "age_band": "<1d", "count": 5},
            ],
            "due_24h": 6,
            "overdue": 2,
            # The whole network, sites summed away (DESIGN: network totals for managers).
            "network": {
                "cells": [
                    {"site": None, "priority": "stat", "age_band": "<1d", "count": 5},
                    {"site": None, "priority": "routine", "age_band": "7-28d", "count": 15},
                ],
                "due_24h": 8,
                "overdue": 3,
            },
        },
        "turnaround": {
            "groups": [
                _turnaround("CT", 10, 5.5, 20.0, 30.0, 0.8, 0),
                _turnaround("MR", 4, 30.0, 100.0, 120.0, 0.5, 1),
            ],
            "network": [
                _turnaround("CT", 30, 6.0, 22.0, 31.0, 0.7, 0),
                _turnaround("MR", 9, 28.0, 90.0, 110.0, 0.6, 2),
            ],
        },
        "demand": {
            # 2030-01-06 is a Sunday: its week starts on Monday 2029-12-31.
            "days": [
                _day("2030-01-06", NORTH, "CT", 3, 2),
                _day("2030-01-07", NORTH, "CT", 4, 1),
                _day("2030-01-08", SOUTH, "MR", 2, 3),
                _day("2030-01-14", NORTH, "CT", 5, 5),
            ],
            "days_to_clear": 3.4,
        },
        "flows": {
            "cells": [
                _flow("2029-12", NORTH, NORTH, 10, 0, 1),
                _flow("2030-01", NORTH, NORTH, 5, 1, 0),
                _flow("2030-01", NORTH, SOUTH, 3, 0, 2),
                _flow("2030-01", SOUTH, NORTH, 7, 2, 0),
                _flow("2030-01", SOUTH, SOUTH, 9, 0, 0),
            ]
        },
        "alerts": {
            "groups": [
                _alerts(NORTH, "critical", 4, 0.75, 12.0, 40.0, 1, 1),
                _alerts(NORTH, "urgent", 2, 1.0, 30.0, 55.0, 0, 0),
                _alerts(SOUTH, "critical", 3, 1 / 3, 50.0, 90.0, 2, 2),
            ]
        },
        "breaches": breaches,
    }


def of_network(network: Network, breaches: list[dict[str, Any]]) -> dict[str, Any]:
    """The committed network's figures as the endpoints would give NORTH's manager."""
    now = network.now
    arrivals = [
        ("CT", now - timedelta(hours=2)),
        ("MR", now - timedelta(days=40)),
        ("CT", now - timedelta(days=3) + timedelta(minutes=30)),
        ("MR", now - timedelta(days=5) + timedelta(minutes=30)),
    ]
    reports = [("CT", now - timedelta(days=2)), ("MR", now - timedelta(days=4))]
    days: dict[tuple[str, str], dict[str, Any]] = {}
    for column, events in (("arrivals", arrivals), ("reports", reports)):
        for modality, at in events:
            key = (at.date().isoformat(), modality)
            row = days.setdefault(key, _day(key[0], NORTH, modality, 0, 0))
            row[column] += 1
    months: dict[str, int] = {}
    for _, at in reports:
        months[at.strftime("%Y-%m")] = months.get(at.strftime("%Y-%m"), 0) + 1
    return {
        "backlog": {
            "cells": [
                {"site": NORTH, "priority": "stat", "age_band": "<1d", "count": 1},
                {"site": NORTH, "priority": "routine", "age_band": ">28d", "count": 1},
            ],
            "due_24h": 0,
            "overdue": 1,
        },
        "turnaround": {
            "groups": [
                _turnaround("CT", 1, 24.0, 24.0, 24.0, 1.0, 0),
                _turnaround("MR", 1, 24.0, 24.0, 24.0, 1.0, 0),
            ]
        },
        "demand": {"days": sorted(days.values(), key=lambda d: d["date"]), "days_to_clear": 28.0},
        "flows": {
            "cells": [_flow(month, NORTH, SOUTH, n, 0, 0) for month, n in sorted(months.items())]
        },
        "alerts": {"groups": [_alerts(NORTH, "critical", 1, 1.0, 10.0, 10.0, 0, 0)]},
        "breaches": {"items": breaches, "count": len(breaches), "network_count": len(breaches)},
    }


def _turnaround(
    modality: str, count: int, p50: float, p90: float, p95: float, share: float, over: int
) -> dict[str, Any]:
    return {
        "key": {"modality": modality},
        "count": count,
        "p50_hours": p50,
        "p90_hours": p90,
        "p95_hours": p95,
        "within_target_share": share,
        "over_28_days": over,
    }


def _day(date: str, site: str, modality: str, arrivals: int, reports: int) -> dict[str, Any]:
    return {
        "date": date,
        "site": site,
        "modality": modality,
        "arrivals": arrivals,
        "reports": reports,
    }


def _flow(
    month: str, origin: str, reporting: str, reports: int, opinions: int, double: int
) -> dict[str, Any]:
    return {
        "month": month,
        "origin_site": origin,
        "reporting_site": reporting,
        "reports": reports,
        "second_opinions": opinions,
        "double_reads": double,
    }


def _alerts(
    site: str,
    category: str,
    count: int,
    share: float,
    p50: float,
    p90: float,
    escalations: int,
    breaches: int,
) -> dict[str, Any]:
    return {
        "site": site,
        "category": category,
        "count": count,
        "acknowledged_within_deadline_share": share,
        "ack_p50_minutes": p50,
        "ack_p90_minutes": p90,
        "escalations": escalations,
        "breaches": breaches,
    }
