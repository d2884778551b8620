// The dashboard page: sign in, filters, and one panel per /api/v1/stats endpoint.

import { ApiError, currentSession, getJson, signIn, signOut } from "./api.js";
import { alertsChart, backlogChart, demandChart, turnaroundChart } from "./charts.js";
import { NETWORK, matches, siteCode, sum, unique } from "./data.js";
import { renderHeatmap } from "./heatmap.js";
import { renderBreaches } from "./breaches.js";

const $ = (id) => document.getElementById(id);
const AGE_BANDS = ["<1d", "1-3d", "3-7d", "7-28d", ">28d"];

class Forbidden extends Error {}

const state = { flows: null };

function show(view) {
  for (const id of ["sign-in", "forbidden", "dashboard"]) {
    $(id).hidden = id !== view;
  }
  const session = currentSession();
  $("sign-out").hidden = view === "sign-in";
  $("who").textContent = session && view !== "sign-in" ? `${session.username} (${session.role})` : "";
}

function readFilters() {
  return {
    site: $("filter-site").value,
    modality: $("filter-modality").value,
    since: $("filter-since").value,
    until: $("filter-until").value,
  };
}

function addOptions(select, values) {
  // Every panel adds what it saw; the list stays sorted and keeps the current choice.
  const [all, ...known] = [...select.options];
  const chosen = select.value;
  const merged = unique([...known.map((option) => option.value), ...values])
    .filter((value) => value !== NETWORK)
    .sort();
  select.replaceChildren(all, ...merged.map((value) => new Option(value, value)));
  select.value = chosen;
}

function panelError(panelId, message) {
  const target = $(panelId).querySelector(".panel-error");
  target.textContent = message;
}

function describeError(error) {
  if (error instanceof ApiError) {
    return `Could not load these figures (${error.message}).`;
  }
  return `Could not draw these figures (${error.message}).`;
}

function backlogPanel(backlog, filters) {
  backlogChart($("chart-backlog"), backlog, filters);
  const cells = backlog.cells.filter((cell) => matches(siteCode(cell.site), filters.site));
  const bands = AGE_BANDS.map(
    (band) => `${band}: ${sum(cells.filter((cell) => cell.age_band === band), "count")}`,
  );
  const network = backlog.network
    ? ` \u00b7 Network: ${sum(backlog.network.cells, "count")} unreported, ` +
      `${backlog.network.due_24h} due within 24 h, ${backlog.network.overdue} overdue`
    : "";
  $("backlog-figures").textContent =
    `Due within 24 h: ${backlog.due_24h} \u00b7 Overdue: ${backlog.overdue} \u00b7 ` +
    `By age: ${bands.join(", ")}${network}`;
}

function demandPanel(demand, filters) {
  demandChart($("chart-demand"), demand, filters);
  const days = demand.days_to_clear;
  $("demand-figures").textContent =
    days === null || days === undefined
      ? "Days to clear today's backlog: no final reports in the recent period."
      : `Days to clear today's backlog at the recent reporting rate: ${Number(days).toFixed(1)}`;
}

function alertsPanel(alerts, filters) {
  alertsChart($("chart-alerts"), alerts, filters);
  const body = $("alerts-table").tBodies[0];
  body.replaceChildren();
  const percent = (share) => (share === null || share === undefined ? "-" : `${Math.round(share * 100)}%`);
  const minutes = (value) => (value === null || value === undefined ? "-" : Number(value).toFixed(0));
  for (const group of alerts.groups) {
    const site = siteCode(group.site);
    if (filters.site && site !== filters.site) {
      continue;
    }
    const row = body.insertRow();
    const values = [
      site,
      group.category.replace(/_/g, " "),
      group.count,
      percent(group.acknowledged_within_deadline_share),
      minutes(group.ack_p50_minutes),
      minutes(group.ack_p90_minutes),
      group.escalations,
      group.breaches,
    ];
    for (const value of values) {
      row.insertCell().textContent = String(value);
    }
  }
}

function flowsPanel(flows, filters) {
  state.flows = flows;
  renderHeatmap($("chart-flows"), flows, filters, $("flows-measure").value);
}

const PANELS = [
  {
    id: "panel-backlog",
    fetch: (f) => getJson("api/v1/stats/backlog", { site: f.site }),
    render: backlogPanel,
    sites: (body) => body.cells.map((c) => siteCode(c.site)),
  },
  {
    id: "panel-turnaround",
    fetch: (f) =>
      getJson("api/v1/stats/turnaround", {
        group_by: "modality",
        site: f.site,
        since: f.since,
        until: f.until,
      }),
    render: (body, f) => turnaroundChart($("chart-turnaround"), body, f),
    modalities: (body) => body.groups.map((g) => g.key.modality),
  },
  {
    id: "panel-demand",
    fetch: (f) =>
      getJson("api/v1/stats/demand", { site: f.site, modality: f.modality, since: f.since, until: f.until }),
    render: demandPanel,
    sites: (body) => body.days.map((d) => siteCode(d.site)),
    modalities: (body) => body.days.map((d) => d.modality),
  },
  {
    id: "panel-flows",
    // The site filter keeps the site's row and column: fetched whole, filtered here.
    fetch: (f) => getJson("api/v1/stats/flows", { since: f.since, until: f.until }),
    render: flowsPanel,
    sites: (body) => body.cells.flatMap((c) => [siteCode(c.origin_site), siteCode(c.reporting_site)]),
  },
  {
    id: "panel-alerts",
    fetch: (f) => getJson("api/v1/stats/alerts", { site: f.site, since: f.since, until: f.until }),
    render: alertsPanel,
    sites: (body) => body.groups.map((g) => siteCode(g.site)),
  },
  {
    id: "panel-breaches",
    fetch: (f) => getJson("api/v1/stats/breaches", { site: f.site, modality: f.modality }),
    render: (body, f) => renderBreaches(body, f),
  },
];

async function loadPanel(panel, filters) {
  panelError(panel.id, "");
  let body;
  try {
    body = await panel.fetch(filters);
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) {
      throw new Forbidden();
    }
    if (error instanceof ApiError && error.status === 401) {
      throw error;
    }
    panelError(panel.id, describeError(error));
    return;
  }
  addOptions($("filter-site"), unique(panel.sites ? panel.sites(body) : []));
  addOptions($("filter-modality"), unique(panel.modalities ? panel.modalities(body) : []));
  try {
    panel.render(body, filters);
  } catch (error) {
    panelError(panel.id, describeError(error));
  }
}

async function load() {
  const filters = readFilters();
  $("status").textContent = "Loading\u2026";
  const results = await Promise.allSettled(PANELS.map((panel) => loadPanel(panel, filters)));
  const failures = results.filter((r) => r.status === "rejected").map((r) => r.reason);
  if (failures.some((reason) => reason instanceof Forbidden)) {
    show("forbidden");
    return;
  }
  if (failures.some((reason) => reason instanceof ApiError && reason.status === 401)) {
    signOut();
    show("sign-in");
    $("sign-in-error").textContent = "Your session has ended: please sign in again.";
    return;
  }
  $("status").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  document.body.dataset.loaded = "true";
}

function signInMessage(error) {
  if (error instanceof ApiError && error.status === 401) {
    return "Wrong username or password.";
  }
  if (error instanceof ApiError && error.status === 429) {
    return "Too many attempts: wait a few minutes and try again.";
  }
  return "Could not sign in: the worklist API did not answer.";
}

function start() {
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("sign-in-error").textContent = "";
    try {
      await signIn($("username").value, $("password").value);
    } catch (error) {
      $("sign-in-error").textContent = signInMessage(error);
      return;
    }
    $("password").value = "";
    show("dashboard");
    await load();
  });
  $("sign-out").addEventListener("click", () => {
    signOut();
    delete document.body.dataset.loaded;
    show("sign-in");
  });
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  $("flows-measure").addEventListener("change", () => {
    if (state.flows) {
      renderHeatmap($("chart-flows"), state.flows, readFilters(), $("flows-measure").value);
    }
  });
  if (currentSession()) {
    show("dashboard");
    load();
  } else {
    show("sign-in");
  }
}

start();
