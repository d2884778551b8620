// The 28-day breach list and the study it links to (fetched with the token, shown in a dialog).

import { getJson, studyHref } from "./api.js";
import { daysSince, itemsOf, matches, priorityLabel, siteCode } from "./data.js";

const $ = (id) => document.getElementById(id);

function examined(item) {
  return item.study_datetime || item.received_at;
}

function formatDateTime(value) {
  return value ? new Date(value).toLocaleString() : "-";
}

function studyLink(item) {
  const link = document.createElement("a");
  link.href = studyHref(item.study_uid);
  link.dataset.studyUid = item.study_uid;
  link.className = "study-link";
  link.textContent = "Open study";
  link.addEventListener("click", (event) => {
    event.preventDefault();
    showStudy(item.study_uid);
  });
  return link;
}

export function renderBreaches(body, filters) {
  const items = itemsOf(body).filter(
    (item) =>
      matches(siteCode(item.site), filters.site) &&
      (!filters.modality || (item.modalities || []).includes(filters.modality)),
  );
  const rows = $("breaches").tBodies[0];
  rows.replaceChildren();
  for (const item of items) {
    const row = rows.insertRow();
    const values = [
      siteCode(item.site),
      item.accession_number || "-",
      item.patient ? item.patient.name || "-" : "-",
      (item.modalities || []).join(", "),
      item.description || "-",
      formatDateTime(examined(item)),
      String(daysSince(examined(item))),
      priorityLabel(item.priority),
      String(item.status).replace(/_/g, " "),
    ];
    for (const value of values) {
      row.insertCell().textContent = value;
    }
    row.insertCell().append(studyLink(item));
  }
  const oldest = Math.max(0, ...items.map((item) => daysSince(examined(item))));
  // The API counts beyond the rows it sends (and the network's); a filter counts rows.
  const filtered = Boolean(filters.site || filters.modality);
  const count = !filtered && typeof body.count === "number" ? body.count : items.length;
  const network =
    !filtered && typeof body.network_count === "number" ? ` (network: ${body.network_count})` : "";
  $("breaches-figures").textContent =
    count === 0
      ? `No unreported study is older than 28 days${network}.`
      : `${count} unreported ${count === 1 ? "study" : "studies"} past 28 days${network}; ` +
        `the oldest listed waiting ${oldest} days.`;
}

function field(list, label, value) {
  const term = document.createElement("dt");
  term.textContent = label;
  const detail = document.createElement("dd");
  detail.textContent = value === null || value === undefined || value === "" ? "-" : String(value);
  list.append(term, detail);
}

async function showStudy(studyUid) {
  const dialog = $("study");
  const list = $("study-fields");
  list.replaceChildren();
  $("study-accession").textContent = "";
  $("study-error").textContent = "";
  dialog.showModal();
  let study;
  try {
    study = await getJson(`api/v1/studies/${encodeURIComponent(studyUid)}`);
  } catch (error) {
    $("study-error").textContent = `Could not open the study (${error.message}).`;
    return;
  }
  $("study-accession").textContent = study.accession_number || study.study_uid;
  const patient = study.patient || {};
  field(list, "Site", study.site ? `${study.site.code} - ${study.site.name}` : "");
  field(list, "Patient", patient.name);
  field(list, "NHS number", patient.nhs_number);
  field(list, "Modalities", (study.modalities || []).join(", "));
  field(list, "Description", study.description);
  field(list, "Examination", formatDateTime(examined(study)));
  field(list, "Received", formatDateTime(study.received_at));
  field(list, "Due", formatDateTime(study.due_at));
  field(list, "Priority", priorityLabel(study.priority));
  field(list, "Status", study.status);
  field(list, "Claimed by", study.claim ? study.claim.username : "");
  field(list, "Report", study.report_status);
  field(list, "Priors in the network", (study.priors || []).length);
  field(list, "Study UID", study.study_uid);
}
