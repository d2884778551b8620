// Small helpers over the stats JSON: no DOM, no Chart.js.

export const PRIORITIES = ["stat", "urgent", "inpatient", "cancer_pathway", "routine"];
const PRIORITY_LABELS = {
  stat: "STAT",
  urgent: "Urgent",
  inpatient: "Inpatient",
  cancer_pathway: "Cancer pathway",
  routine: "Routine",
};
const DAY_MS = 86_400_000;

export function priorityLabel(priority) {
  return PRIORITY_LABELS[priority] || String(priority);
}

// Figures for the whole network (a manager's network totals) carry no site.
export const NETWORK = "Network";

export function siteCode(site) {
  // A site is a code in the stats figures and {code, name} in WorklistItems.
  if (site === null || site === undefined) {
    return NETWORK;
  }
  if (typeof site === "object") {
    return site.code;
  }
  return site;
}

export function matches(value, chosen) {
  return !chosen || value === chosen;
}

export function unique(values) {
  return [...new Set(values.filter((value) => value !== undefined && value !== null))];
}

export function sum(rows, field) {
  return rows.reduce((total, row) => total + (Number(row[field]) || 0), 0);
}

export function weekStart(isoDate) {
  // The Monday (ISO week start) of a YYYY-MM-DD date, as YYYY-MM-DD.
  const [year, month, day] = isoDate.slice(0, 10).split("-").map(Number);
  const time = Date.UTC(year, month - 1, day);
  const weekday = (new Date(time).getUTCDay() + 6) % 7;
  return new Date(time - weekday * DAY_MS).toISOString().slice(0, 10);
}

export function daysSince(isoDateTime, now = Date.now()) {
  return Math.floor((now - Date.parse(isoDateTime)) / DAY_MS);
}

export function itemsOf(body) {
  // The breach list: WorklistItems, bare or in {"items": [...]} as the worklist pages them.
  return Array.isArray(body) ? body : body.items || [];
}
