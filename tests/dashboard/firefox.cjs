// /dashboard and /docs in a stock headless Firefox over WebDriver BiDi (puppeteer-core),
// for tests/dashboard/test_firefox.py, which reads the JSON this prints on stdout.
//
//   node firefox.cjs '{"firefox": ..., "origin": ..., "username": ..., "password": ...,
//                      "screenshots": DIR}'
//
// Every request to another origin is recorded and aborted; console errors and page errors
// are recorded. Nothing is asserted here: the test asserts on what is printed.
"use strict";

const path = require("node:path");
const puppeteer = require("puppeteer-core");

const TIMEOUT_MS = 60_000;
const CHARTS = ["chart-backlog", "chart-turnaround", "chart-demand", "chart-alerts"];

function summarise(ids) {
  // In the page: each Chart.js chart's labels, datasets, legend and painted pixels.
  const out = {};
  for (const id of ids) {
    const canvas = document.getElementById(id);
    const chart = Chart.getChart(canvas);
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < pixels.length; i += 4) {
      if (pixels[i] !== 0) painted++;
    }
    out[id] = {
      labels: chart.data.labels,
      datasets: chart.data.datasets.map((d) => ({ label: d.label, data: d.data })),
      legend: chart.legend.legendItems.map((item) => item.text),
      painted,
    };
  }
  return out;
}

async function watchedPage(browser, origin, seen) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 1000 });
  await page.setRequestInterception(true);
  page.on("request", (request) => {
    const url = request.url();
    if (url === origin || url.startsWith(origin + "/")) {
      seen.ours.push(url);
      request.continue();
    } else if (url.startsWith("data:") || url.startsWith("blob:")) {
      // Made in the page itself (an inline image, a blank frame): nothing leaves the host.
      seen.inline.push(url.slice(0, 40));
      request.continue();
    } else {
      seen.foreign.push(url);
      request.abort();
    }
  });
  page.on("response", (response) => {
    const matched = /\/api\/v1\/stats\/([a-z]+)$/.exec(new URL(response.url()).pathname);
    if (matched) seen.stats[matched[1]] = response.status();
  });
  page.on("console", (message) => {
    if (message.type() === "error") seen.errors.push(message.text());
  });
  page.on("pageerror", (error) => seen.errors.push(`page error: ${error.message || error}`));
  return page;
}

async function dashboard(browser, config, seen) {
  const page = await watchedPage(browser, config.origin, seen);
  await page.goto(`${config.origin}/dashboard`, { waitUntil: "load" });
  await page.type("#username", config.username);
  await page.type("#password", config.password);
  await page.click("#sign-in-form button[type=submit]");
  await page.waitForSelector("body[data-loaded=true]", { timeout: TIMEOUT_MS });
  const result = {
    who: await page.$eval("#who", (el) => el.textContent),
    charts: await page.evaluate(summarise, CHARTS),
    heatmap: await page.$$eval("#chart-flows svg g.cell", (cells) =>
      cells.map((g) => [
        g.dataset.origin,
        g.dataset.reporting,
        g.querySelector("text.value").textContent,
      ]),
    ),
    breaches: await page.$$eval("#breaches a.study-link", (links) =>
      links.map((a) => [a.dataset.studyUid, a.getAttribute("href")]),
    ),
    breachesFigures: await page.$eval("#breaches-figures", (el) => el.textContent),
  };
  await page.screenshot({ path: path.join(config.screenshots, "dashboard-firefox.png"), fullPage: true });
  // Open the breached study: the details come from the API.
  await page.click("#breaches a.study-link");
  await page.waitForSelector("#study[open] #study-fields dd", { timeout: TIMEOUT_MS });
  result.studyAccession = await page.$eval("#study-accession", (el) => el.textContent);
  await page.close();
  return result;
}

async function docs(browser, config, seen) {
  const page = await watchedPage(browser, config.origin, seen);
  await page.goto(`${config.origin}/docs`, { waitUntil: "load" });
  await page.waitForSelector(".opblock", { timeout: TIMEOUT_MS });
  const result = { operations: await page.$$eval(".opblock", (blocks) => blocks.length) };
  await page.screenshot({ path: path.join(config.screenshots, "docs-firefox.png") });
  await page.close();
  return result;
}

async function main() {
  const config = JSON.parse(process.argv[2]);
  const browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: config.firefox,
    headless: true,
  });
  try {
    const seen = { ours: [], inline: [], foreign: [], errors: [], stats: {} };
    const result = {
      version: await browser.version(),
      dashboard: await dashboard(browser, config, seen),
      docs: await docs(browser, config, seen),
    };
    process.stdout.write(JSON.stringify({ ...result, ...seen }));
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
