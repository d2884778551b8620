// The Chart.js charts: backlog, turnaround, weekly demand and alert compliance.
// Each takes the JSON of one /api/v1/stats endpoint (DESIGN's shapes) and the filters.

import { PRIORITIES, priorityLabel, siteCode, matches, sum, unique, weekStart } from "./data.js";

const Chart = window.Chart;
Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;
Chart.defaults.font.family = "system-ui, sans-serif";

const PRIORITY_COLOURS = {
  stat: "#b91c1c",
  urgent: "#ea580c",
  inpatient: "#7c3aed",
  cancer_pathway: "#0369a1",
  routine: "#64748b",
};
const SERIES_COLOURS = ["#1d4ed8", "#0f766e", "#a16207", "#be185d", "#4d7c0f", "#6d28d9", "#0e7490"];
const AGE_BANDS = ["<1d", "1-3d", "3-7d", "7-28d", ">28d"];

const charts = new Map();

function draw(canvas, config) {
  charts.get(canvas.id)?.destroy();
  const chart = new Chart(canvas, config);
  charts.set(canvas.id, chart);
  return chart;
}

function colour(index) {
  return SERIES_COLOURS[index % SERIES_COLOURS.length];
}

function axisTitle(text) {
  return { display: true, text };
}

export function backlogChart(canvas, backlog, filters) {
  const cells = backlog.cells.filter((cell) => matches(siteCode(cell.site), filters.site));
  const sites = unique(cells.map((cell) => siteCode(cell.site))).sort();
  const priorities = unique([...PRIORITIES, ...cells.map((cell) => cell.priority)]).filter(
    (priority) => cells.some((cell) => cell.priority === priority),
  );
  const of = (site, priority) =>
    cells.filter((cell) => siteCode(cell.site) === site && cell.priority === priority);
  const bands = (site, priority) =>
    AGE_BANDS.map((band) => {
      const count = sum(of(site, priority).filter((cell) => cell.age_band === band), "count");
      return `${band}: ${count}`;
    }).join(", ");
  return draw(canvas, {
    type: "bar",
    data: {
      labels: sites,
      datasets: priorities.map((priority) => ({
        label: priorityLabel(priority),
        data: sites.map((site) => sum(of(site, priority), "count")),
        backgroundColor: PRIORITY_COLOURS[priority] || colour(0),
      })),
    },
    options: {
      scales: {
        x: { stacked: true, title: axisTitle("Site") },
        y: {
          stacked: true,
          beginAtZero: true,
          ticks: { precision: 0 },
          title: axisTitle("Unreported studies"),
        },
      },
      plugins: {
        tooltip: {
          callbacks: {
            afterLabel: (item) => bands(sites[item.dataIndex], priorities[item.datasetIndex]),
          },
        },
      },
    },
  });
}

function networkMedian(turnaround, groups) {
  // The network's median beside a manager's own sites (the API's ``network`` groups).
  if (!Array.isArray(turnaround.network) || turnaround.network.length === 0) {
    return [];
  }
  const median = (modality) => {
    const group = turnaround.network.find((g) => g.key.modality === modality);
    return group ? group.p50_hours : null;
  };
  return [
    {
      type: "line",
      label: "Network p50 (hours)",
      data: groups.map((group) => median(group.key.modality)),
      borderColor: "#0f172a",
      backgroundColor: "#0f172a",
      showLine: false,
      pointRadius: 7,
      pointStyle: "triangle",
      order: -1,
      yAxisID: "y",
    },
  ];
}

export function turnaroundChart(canvas, turnaround, filters) {
  const groups = turnaround.groups.filter((group) => matches(group.key.modality, filters.modality));
  const labels = groups.map((group) => `${group.key.modality} (${group.count})`);
  const hours = (field, label, index) => ({
    type: "bar",
    label,
    data: groups.map((group) => group[field]),
    backgroundColor: colour(index),
    yAxisID: "y",
  });
  return draw(canvas, {
    data: {
      labels,
      datasets: [
        {
          type: "line",
          label: "Within target (%)",
          data: groups.map((group) =>
            group.within_target_share === null ? null : group.within_target_share * 100,
          ),
          borderColor: "#b91c1c",
          backgroundColor: "#b91c1c",
          // One point per modality: a line between modalities would suggest a trend.
          showLine: false,
          pointRadius: 7,
          pointHoverRadius: 9,
          pointStyle: "rectRot",
          clip: false,
          order: -2,
          yAxisID: "share",
        },
        hours("p50_hours", "p50 (hours)", 0),
        hours("p90_hours", "p90 (hours)", 1),
        hours("p95_hours", "p95 (hours)", 2),
        ...networkMedian(turnaround, groups),
      ],
    },
    options: {
      scales: {
        x: { title: axisTitle("Modality (studies reported)") },
        y: { beginAtZero: true, title: axisTitle("Hours to final report") },
        share: {
          position: "right",
          min: 0,
          max: 100,
          grid: { drawOnChartArea: false },
          title: axisTitle("Within target (%)"),
        },
      },
    },
  });
}

export function weeklyDemand(demand, filters) {
  // Days summed into weeks starting on Monday, for the chosen site and modality.
  const days = demand.days.filter(
    (day) => matches(siteCode(day.site), filters.site) && matches(day.modality, filters.modality),
  );
  const weeks = unique(days.map((day) => weekStart(day.date))).sort();
  const inWeek = (week) => days.filter((day) => weekStart(day.date) === week);
  return weeks.map((week) => ({
    week,
    arrivals: sum(inWeek(week), "arrivals"),
    reports: sum(inWeek(week), "reports"),
  }));
}

export function demandChart(canvas, demand, filters) {
  const weeks = weeklyDemand(demand, filters);
  return draw(canvas, {
    type: "bar",
    data: {
      labels: weeks.map((row) => `w/c ${row.week}`),
      datasets: [
        { label: "Arrivals", data: weeks.map((row) => row.arrivals), backgroundColor: colour(0) },
        { label: "Final reports", data: weeks.map((row) => row.reports), backgroundColor: colour(1) },
      ],
    },
    options: {
      scales: {
        x: { title: axisTitle("Week commencing") },
        y: { beginAtZero: true, ticks: { precision: 0 }, title: axisTitle("Studies") },
      },
    },
  });
}

export function alertsChart(canvas, alerts, filters) {
  const groups = alerts.groups.filter((group) => matches(siteCode(group.site), filters.site));
  const categories = unique(groups.map((group) => group.category));
  const sites = unique(groups.map((group) => siteCode(group.site))).sort();
  return draw(canvas, {
    type: "bar",
    data: {
      labels: categories.map((category) => category.replace(/_/g, " ")),
      datasets: sites.map((site, index) => ({
        label: site,
        data: categories.map((category) => {
          const group = groups.find((g) => siteCode(g.site) === site && g.category === category);
          const share = group ? group.acknowledged_within_deadline_share : null;
          return share === null || share === undefined ? null : share * 100;
        }),
        backgroundColor: colour(index),
      })),
    },
    options: {
      scales: {
        x: { title: axisTitle("Category") },
        y: { min: 0, max: 100, title: axisTitle("Acknowledged within deadline (%)") },
      },
    },
  });
}
