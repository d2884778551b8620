// The flows matrix as an SVG heat map: originating trust (rows) by reporting trust (columns).

import { matches, siteCode, sum, unique } from "./data.js";

const SVG = "http://www.w3.org/2000/svg";
const CELL_W = 72;
const CELL_H = 34;
const LEFT = 110;
const TOP = 44;
const LEGEND_STEPS = 5;
const AXIS_TITLE_W = 130;
const LOW = [241, 245, 249];
const HIGH = [29, 78, 216];

function node(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) {
    element.setAttribute(key, String(value));
  }
  if (text !== undefined) {
    element.textContent = text;
  }
  return element;
}

function shade(fraction) {
  const mix = LOW.map((low, i) => Math.round(low + (HIGH[i] - low) * fraction));
  return `rgb(${mix.join(",")})`;
}

export function flowMatrix(flows, filters, measure) {
  // Totals over the period's months; a site filter keeps its row and its column.
  const cells = flows.cells
    .map((cell) => ({
      ...cell,
      origin_site: siteCode(cell.origin_site),
      reporting_site: siteCode(cell.reporting_site),
    }))
    .filter(
      (cell) => matches(cell.origin_site, filters.site) || matches(cell.reporting_site, filters.site),
    );
  const origins = unique(cells.map((cell) => cell.origin_site)).sort();
  const reporters = unique(cells.map((cell) => cell.reporting_site)).sort();
  const value = (origin, reporter) =>
    sum(
      cells.filter((cell) => cell.origin_site === origin && cell.reporting_site === reporter),
      measure,
    );
  const rows = origins.map((origin) => reporters.map((reporter) => value(origin, reporter)));
  return { origins, reporters, rows };
}

function legend(max) {
  // A few steps from none to the largest cell; never the same number twice.
  const steps = unique(
    Array.from({ length: LEGEND_STEPS }, (_, step) => Math.round((max * step) / (LEGEND_STEPS - 1))),
  );
  const list = document.createElement("ul");
  list.className = "heatmap-legend";
  for (const value of steps) {
    const item = document.createElement("li");
    const swatch = node("svg", { width: 14, height: 14, "aria-hidden": "true" });
    swatch.append(node("rect", { width: 14, height: 14, fill: shade(value / max) }));
    item.append(swatch, ` ${value}`);
    list.append(item);
  }
  return list;
}

export function renderHeatmap(container, flows, filters, measure) {
  const { origins, reporters, rows } = flowMatrix(flows, filters, measure);
  container.replaceChildren();
  if (origins.length === 0) {
    container.append("No flows in this period.");
    return;
  }
  const max = Math.max(1, ...rows.flat());
  const width = LEFT + Math.max(reporters.length * CELL_W, AXIS_TITLE_W) + 8;
  const height = TOP + origins.length * CELL_H + 8;
  const svg = node("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": "Flows between trusts",
  });
  svg.append(node("text", { x: LEFT, y: 14, class: "axis" }, "Reporting trust \u2192"));
  svg.append(node("text", { x: 4, y: TOP - 8, class: "axis" }, "Originating trust \u2193"));
  reporters.forEach((reporter, col) => {
    const x = LEFT + col * CELL_W + CELL_W / 2;
    svg.append(node("text", { x, y: TOP - 8, "text-anchor": "middle", class: "label" }, reporter));
  });
  origins.forEach((origin, row) => {
    const y = TOP + row * CELL_H;
    svg.append(node("text", { x: LEFT - 8, y: y + CELL_H / 2 + 4, "text-anchor": "end", class: "label" }, origin));
    reporters.forEach((reporter, col) => {
      const count = rows[row][col];
      const fraction = count / max;
      const x = LEFT + col * CELL_W;
      const cell = node("g", { class: "cell", "data-origin": origin, "data-reporting": reporter });
      cell.append(node("title", {}, `${origin} \u2192 ${reporter}: ${count}`));
      cell.append(node("rect", { x, y, width: CELL_W - 2, height: CELL_H - 2, fill: shade(fraction) }));
      cell.append(
        node(
          "text",
          {
            x: x + CELL_W / 2,
            y: y + CELL_H / 2 + 4,
            "text-anchor": "middle",
            class: fraction > 0.55 ? "value dark" : "value",
          },
          String(count),
        ),
      );
      svg.append(cell);
    });
  });
  container.append(svg, legend(max));
}
