// Drives weir's web UI in a real headless Chromium (Debian's, through
// playwright-core) against a collector the Rust test started and loaded:
// each page opens and shows its data, a search narrows the logs, a log
// record's trace link opens its waterfall, a span opens onto its tags, a
// trace of 5,000 spans renders, and the live tail shows a record sent
// after it started. Screenshots go to $WEIR_SCREENSHOTS.

import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const base = process.env.WEIR_UI;
const otlp = process.env.WEIR_OTLP;
const trace = process.env.WEIR_TRACE;
const bigTrace = process.env.WEIR_BIG_TRACE;
const shots = process.env.WEIR_SCREENSHOTS;
mkdirSync(shots, { recursive: true });

function check(condition, what) {
  if (!condition) throw new Error("UI check failed: " + what);
  console.log("ok: " + what);
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  // No network beyond loopback here: keep Chromium from reaching out.
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

async function shot(name) {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

try {
  // Overview: who eats the bandwidth, who is dropped.
  await page.goto(base + "/");
  check(await page.locator("svg.chart polyline").count() >= 3, "the overview charts each source");
  const web = page.locator("table.usage tr", { hasText: "web" });
  check((await web.getAttribute("class")) === "hot", "web, which was dropped, is marked");
  check((await web.innerText()).includes("rate_limit"), "web's drops say why");
  check((await web.innerText()).includes("drop"), "web's policy is shown");
  await shot("overview");

  // Logs: search through the form, see the histogram and the records.
  await page.click("table.usage a:has-text('db')");
  await page.waitForURL(/\/logs\?container=db/);
  await page.fill("input[name=q]", "slow query");
  await Promise.all([page.waitForURL(/q=slow/), page.click("form.search button[type=submit]")]);
  const rows = page.locator("#records tbody tr");
  check((await rows.count()) === 6, "the search finds the six slow queries of db");
  check(await page.locator("figure.histogram svg rect").count() > 0, "the histogram is drawn");
  await shot("logs");

  // A record's trace link opens its waterfall.
  await Promise.all([page.waitForURL(new RegExp("/traces/" + trace)), rows.first().locator("a.trace").click()]);
  check(await page.locator("details.span").count() === 6, "the trace shows its six spans");
  const failed = page.locator("details.span.err");
  check(await failed.count() === 1, "the failed span is marked");
  await failed.locator("summary").click();
  check(await failed.locator(".info").isVisible(), "a span opens onto its details");
  check((await failed.locator(".info").innerText()).includes("card declined"), "its tags are shown");
  await shot("trace");

  // Trace search by service and duration.
  await page.goto(base + "/traces");
  await page.selectOption("select[name=serviceName]", "payment");
  await Promise.all([page.waitForURL(/serviceName=payment/), page.click("form.search button[type=submit]")]);
  check(await page.locator("table.traces tbody tr").count() === 1, "one trace of payment");
  check(await page.locator("table.traces tr.err").count() === 1, "it is marked as failed");
  await shot("traces");

  // A trace of 5,000 spans.
  const started = Date.now();
  await page.goto(base + "/traces/" + bigTrace);
  const spans = await page.locator("details.span").count();
  check(spans === 5000, `the big trace shows all its spans (${spans}) in ${Date.now() - started} ms`);
  await page.locator("details.span").nth(4321).locator("summary").click();
  check(await page.locator("details.span").nth(4321).locator(".info").isVisible(), "a deep span opens");
  await shot("big-trace");

  // Dependencies.
  await page.goto(base + "/dependencies");
  check(await page.locator("svg.graph rect.service").count() >= 3, "the graph draws the services");
  check(await page.locator("svg.graph path.edge.err").count() >= 1, "the failing call is red");
  await shot("dependencies");

  // The live tail shows what arrives after it started.
  await page.goto(base + "/logs?container=worker");
  await page.click("#tail");
  // The tail starts at the newest record when its stream opens: send only then.
  await page.locator("#tail-state[data-open='1']").waitFor({ timeout: 10000 });
  const now = BigInt(Date.now()) * 1000000n;
  const sent = await fetch(otlp + "/v1/logs", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ resourceLogs: [{
      resource: { attributes: [
        { key: "host.name", value: { stringValue: "node-b" } },
        { key: "container.name", value: { stringValue: "worker" } },
      ] },
      scopeLogs: [{ logRecords: [{ timeUnixNano: String(now), body: { stringValue: "tailed while watching" } }] }],
    }] }),
  });
  check(sent.ok, "a new record is sent");
  const tailed = page.locator("#records tbody tr.new", { hasText: "tailed while watching" });
  await tailed.waitFor({ timeout: 10000 });
  check((await tailed.innerText()).includes("node-b/worker"), "the live tail shows it, with its source");
  await shot("tail");

  check(errors.length === 0, "no script error: " + errors.join("; "));
} finally {
  await browser.close();
}
