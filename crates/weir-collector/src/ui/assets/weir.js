// weir's UI works without this file; with it, the logs page gains a live
// tail (Server-Sent Events from /api/v1/logs/tail).
"use strict";

(function () {
  const button = document.getElementById("tail");
  const table = document.querySelector("#records tbody");
  if (!button || !table) return;
  button.hidden = false;
  const state = document.getElementById("tail-state");
  // The names the API gives severities 0 to 7 (weir_agent::sink::ndjson::SEVERITY).
  const severities = ["emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"];
  let source = null;

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  // RFC 3339 with nanoseconds, as the server's own pages show it.
  function time(text) {
    return String(text || "").replace("T", " ").slice(0, 23);
  }

  function show(record) {
    const row = document.createElement("tr");
    const severity = severities.indexOf(record.severity);
    row.className = "new sev-" + (severity >= 0 ? severity : 9);
    const resource = record.resource || {};
    const where = [resource["host.name"] || resource.node || resource["k8s.node.name"],
                   resource["container.name"] || resource["k8s.container.name"]]
      .filter(Boolean).join("/") || resource["service.name"] || "";
    cell(row, time(record.time), "t");
    cell(row, where);
    cell(row, record.stream === "other" ? "" : record.stream || "");
    cell(row, record.severity || "");
    const body = cell(row, record.body !== undefined ? record.body : "(not UTF-8: " + (record.body_base64 || "").length + " base64 characters)", "body");
    if (record.trace_id) {
      const link = document.createElement("a");
      link.className = "trace";
      link.href = "/traces/" + record.trace_id;
      link.textContent = "trace " + record.trace_id.slice(0, 8);
      body.append(" ", link);
    }
    table.insertBefore(row, table.firstChild);
    while (table.rows.length > 1000) table.deleteRow(table.rows.length - 1);
  }

  button.addEventListener("click", function () {
    if (source) {
      source.close();
      source = null;
      button.textContent = "Live tail";
      state.textContent = "";
      return;
    }
    source = new EventSource("/api/v1/logs/tail?" + button.dataset.query);
    button.textContent = "Stop tail";
    state.textContent = "connecting…";
    // The server says where the tail starts once it knows.
    source.addEventListener("ready", function () {
      state.textContent = "following new records…";
      state.dataset.open = "1";
    });
    source.onmessage = function (event) {
      try { show(JSON.parse(event.data)); } catch (e) { state.textContent = "cannot read a record: " + e; }
    };
    // The server's own `error` event ends the tail; a dropped connection
    // (no data) is retried by the browser.
    source.addEventListener("error", function (event) {
      if (!event.data) return;
      source.close();
      source = null;
      button.textContent = "Live tail";
      state.textContent = "the tail stopped: " + event.data;
      delete state.dataset.open;
    });
  });
})();
