"""``/dashboard`` in a real headless Chromium: sign in, every chart drawn, nothing off the host."""

from __future__ import annotations

from tests.dashboard import figures
from tests.dashboard.conftest import (
    ADMIN,
    MANAGER,
    NORTH,
    RADIOLOGIST,
    RENDER_TIMEOUT_MS,
    SOUTH,
    STATS,
    LiveApi,
    Network,
    Watched,
    missing_stats,
)

CHARTS = ("chart-backlog", "chart-turnaround", "chart-demand", "chart-alerts")
# A chart with axes, bars and a legend paints far more than this many pixels.
PAINTED_AT_LEAST = 5_000


def _assert_clean(watched: Watched) -> None:
    assert watched.foreign == []
    assert watched.errors == []


def test_manager_sees_every_chart_with_the_figures_summed_by_hand(
    live_api: LiveApi, network: Network, watched: Watched
) -> None:
    breach = live_api.study(MANAGER, network.breached_uid)
    watched.stand_in({name: lambda name=name: figures.fixed([breach])[name] for name in STATS})
    watched.sign_in(MANAGER)
    watched.wait_loaded()
    page = watched.page

    assert page.locator("#who").text_content() == f"{MANAGER} (manager)"
    for canvas in CHARTS:
        assert watched.chart(canvas)["painted"] > PAINTED_AT_LEAST, canvas

    backlog = watched.chart("chart-backlog")
    assert backlog["labels"] == [NORTH, SOUTH]
    assert backlog["legend"] == ["STAT", "Urgent", "Routine"]
    assert [d["data"] for d in backlog["datasets"]] == [[2, 0], [0, 4], [4, 5]]
    assert page.locator("#backlog-figures").text_content() == (
        "Due within 24 h: 6 \u00b7 Overdue: 2 \u00b7 "
        "By age: <1d: 7, 1-3d: 4, 3-7d: 0, 7-28d: 3, >28d: 1 \u00b7 "
        "Network: 20 unreported, 8 due within 24 h, 3 overdue"
    )

    turnaround = watched.chart("chart-turnaround")
    assert turnaround["labels"] == ["CT (10)", "MR (4)"]
    assert turnaround["legend"] == [
        "Within target (%)",
        "Network p50 (hours)",
        "p50 (hours)",
        "p90 (hours)",
        "p95 (hours)",
    ]
    assert [d["data"] for d in turnaround["datasets"]] == [
        [80, 50],
        [5.5, 30],
        [20, 100],
        [30, 120],
        [6, 28],
    ]

    demand = watched.chart("chart-demand")
    assert demand["labels"] == ["w/c 2029-12-31", "w/c 2030-01-07", "w/c 2030-01-14"]
    assert demand["legend"] == ["Arrivals", "Final reports"]
    assert [d["data"] for d in demand["datasets"]] == [[3, 6, 5], [2, 4, 5]]
    assert "at the recent reporting rate: 3.4" in str(
        page.locator("#demand-figures").text_content()
    )

    alerts = watched.chart("chart-alerts")
    assert alerts["labels"] == ["critical", "urgent"]
    assert alerts["legend"] == [NORTH, SOUTH]
    assert alerts["datasets"][0]["data"] == [75, 100]
    assert round(alerts["datasets"][1]["data"][0], 3) == 33.333
    assert alerts["datasets"][1]["data"][1] is None
    assert page.locator("#alerts-table tbody tr").count() == 3

    assert watched.heatmap() == {
        (NORTH, NORTH): 15,
        (NORTH, SOUTH): 3,
        (SOUTH, NORTH): 7,
        (SOUTH, SOUTH): 9,
    }
    assert page.locator(".heatmap-legend li").all_text_contents()[-1].strip() == "15"
    watched.screenshot("dashboard.png")
    page.select_option("#flows-measure", "second_opinions")
    assert watched.heatmap()[(SOUTH, NORTH)] == 2
    assert page.locator(".heatmap-legend li").all_text_contents() == [" 0", " 1", " 2"]

    links = page.locator("#breaches a.study-link")
    assert links.count() == 1
    assert links.first.get_attribute("href") == f"/api/v1/studies/{network.breached_uid}"
    assert page.locator("#breaches tbody td").nth(1).text_content() == network.breached_accession
    assert page.locator("#breaches tbody td").nth(6).text_content() == "40"
    assert page.locator("#breaches-figures").text_content() == (
        "1 unreported study past 28 days; the oldest listed waiting 40 days."
    )

    links.first.click()
    page.wait_for_selector("#study[open] #study-fields dd", timeout=RENDER_TIMEOUT_MS)
    assert page.locator("#study-accession").text_content() == network.breached_accession
    _assert_clean(watched)


def test_filters_narrow_every_chart_and_reach_the_api(
    live_api: LiveApi, network: Network, watched: Watched
) -> None:
    breach = live_api.study(MANAGER, network.breached_uid)
    watched.stand_in({name: lambda name=name: figures.fixed([breach])[name] for name in STATS})
    watched.sign_in(MANAGER)
    watched.wait_loaded()
    page = watched.page
    assert page.locator("#filter-site option").all_text_contents() == ["All sites", NORTH, SOUTH]
    assert page.locator("#filter-modality option").all_text_contents() == [
        "All modalities",
        "CT",
        "MR",
    ]

    page.select_option("#filter-site", NORTH)
    page.select_option("#filter-modality", "CT")
    page.fill("#filter-since", "2029-12-01")
    page.fill("#filter-until", "2030-01-31")
    page.evaluate("delete document.body.dataset.loaded")
    page.click("#filters button[type=submit]")
    watched.wait_loaded()

    assert watched.chart("chart-backlog")["labels"] == [NORTH]
    assert str(page.locator("#backlog-figures").text_content()).endswith(
        "By age: <1d: 2, 1-3d: 0, 3-7d: 0, 7-28d: 3, >28d: 1 \u00b7 "
        "Network: 20 unreported, 8 due within 24 h, 3 overdue"
    )
    assert watched.chart("chart-turnaround")["labels"] == ["CT (10)"]
    demand = watched.chart("chart-demand")
    assert [d["data"] for d in demand["datasets"]] == [[3, 4, 5], [2, 1, 5]]
    assert watched.chart("chart-alerts")["legend"] == [NORTH]
    # NORTH's row and NORTH's column: SOUTH's own reports are not NORTH's business.
    assert watched.heatmap() == {
        (NORTH, NORTH): 15,
        (NORTH, SOUTH): 3,
        (SOUTH, NORTH): 7,
        (SOUTH, SOUTH): 0,
    }
    assert page.locator("#breaches a.study-link").count() == 0

    demand_query = watched.stats_queries["demand"][-1]
    assert demand_query == {
        "site": [NORTH],
        "modality": ["CT"],
        "since": ["2029-12-01"],
        "until": ["2030-01-31"],
    }
    assert watched.stats_queries["turnaround"][-1]["group_by"] == ["modality"]
    _assert_clean(watched)


def test_manager_dashboard_on_the_api_figures(
    live_api: LiveApi, network: Network, watched: Watched
) -> None:
    """The real endpoints where the API has them; DESIGN-shaped stand-ins until then."""
    breach = live_api.study(MANAGER, network.breached_uid)
    stand_ins = figures.of_network(network, [breach])
    watched.stand_in({name: lambda name=name: stand_ins[name] for name in missing_stats(live_api)})
    watched.sign_in(MANAGER)
    watched.wait_loaded()
    page = watched.page
    assert set(watched.stats_status) == set(STATS)
    assert set(watched.stats_status.values()) == {200}

    for canvas in CHARTS:
        assert watched.chart(canvas)["painted"] > PAINTED_AT_LEAST, canvas
    backlog = watched.chart("chart-backlog")
    assert NORTH in backlog["labels"]
    assert {"STAT", "Routine"} <= set(backlog["legend"])
    north = backlog["labels"].index(NORTH)
    assert sum(d["data"][north] for d in backlog["datasets"]) == 2
    turnaround = watched.chart("chart-turnaround")
    assert {"CT (1)", "MR (1)"} <= set(turnaround["labels"])
    demand = watched.chart("chart-demand")
    assert sum(demand["datasets"][1]["data"]) == 2
    alerts = watched.chart("chart-alerts")
    critical = alerts["labels"].index("critical")
    assert alerts["datasets"][alerts["legend"].index(NORTH)]["data"][critical] == 100
    assert watched.heatmap()[(NORTH, SOUTH)] == 2

    assert str(page.locator("#breaches-figures").text_content()).startswith(
        "1 unreported study past 28 days (network: 1);"
    )
    link = page.locator(f"#breaches a[data-study-uid='{network.breached_uid}']")
    assert link.get_attribute("href") == f"/api/v1/studies/{network.breached_uid}"
    watched.screenshot("dashboard-api.png")
    link.click()
    page.wait_for_selector("#study[open] #study-fields dd", timeout=RENDER_TIMEOUT_MS)
    assert page.locator("#study-accession").text_content() == network.breached_accession
    _assert_clean(watched)


def test_admin_signs_in_to_the_same_dashboard(
    live_api: LiveApi, network: Network, watched: Watched
) -> None:
    breach = live_api.study(ADMIN, network.breached_uid)
    stand_ins = figures.of_network(network, [breach])
    watched.stand_in({name: lambda name=name: stand_ins[name] for name in missing_stats(live_api)})
    watched.sign_in(ADMIN)
    watched.wait_loaded()
    assert watched.page.locator("#who").text_content() == f"{ADMIN} (admin)"
    assert set(watched.stats_status.values()) == {200}
    for canvas in CHARTS:
        assert watched.chart(canvas)["painted"] > PAINTED_AT_LEAST, canvas
    assert watched.page.locator("#breaches a.study-link").count() == 1
    _assert_clean(watched)


def test_radiologist_is_told_the_dashboard_is_for_managers_and_admins(
    live_api: LiveApi, network: Network, watched: Watched
) -> None:
    forbidden = {"detail": "managers and admins only"}
    for name in missing_stats(live_api):
        watched.page.route(
            f"**/api/v1/stats/{name}*",
            lambda route: route.fulfill(status=403, json=forbidden),
        )
    watched.sign_in(RADIOLOGIST)
    message = watched.page.locator("#forbidden")
    message.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
    assert "managers and admins only" in str(message.text_content())
    assert watched.page.locator("#dashboard").is_hidden()
    assert set(watched.stats_status.values()) == {403}
    assert watched.foreign == []
    # Chromium reports each refused fetch on the console; nothing else may be there.
    assert all("status of 403" in error for error in watched.errors), watched.errors


def test_wrong_password_is_refused_on_the_page(
    live_api: LiveApi, watched: Watched, network: Network
) -> None:
    watched.page.goto(f"{live_api.base_url}/dashboard")
    watched.page.fill("#username", MANAGER)
    watched.page.fill("#password", "not-the-password")
    watched.page.click("#sign-in-form button[type=submit]")
    error = watched.page.locator("#sign-in-error")
    error.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
    assert error.text_content() == "Wrong username or password."
    assert watched.page.locator("#dashboard").is_hidden()
    assert watched.foreign == []
