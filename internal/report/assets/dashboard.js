// questlog dashboard: live counters every second, charts every few seconds.
// Everything comes from this server; nothing is fetched from elsewhere.
(function () {
  "use strict";
  var body = document.body;
  var base = body.dataset.base;
  var refreshMs = Number(body.dataset.refreshMs) || 5000;

  // Errors are shown on the page too, so a page dump tells what went wrong.
  function record(msg) {
    var list = document.getElementById("page-errors");
    var li = document.createElement("li");
    li.textContent = String(msg);
    list.appendChild(li);
    list.hidden = false;
  }
  window.addEventListener("error", function (e) { record(e.message); });
  window.addEventListener("unhandledrejection", function (e) { record(e.reason); });

  var status = document.getElementById("live-status");
  function setStatus(text) { status.textContent = text; }

  function renderLive(data) {
    var rates = data.events_per_second || {};
    var types = Object.keys(rates).sort(function (a, b) { return rates[b] - rates[a] || (a < b ? -1 : 1); });
    var tbody = document.querySelector("#live-table tbody");
    var rows = document.createDocumentFragment();
    types.forEach(function (t) {
      var tr = document.createElement("tr");
      var th = document.createElement("th");
      th.textContent = t;
      var td = document.createElement("td");
      td.className = "num";
      td.textContent = rates[t].toFixed(1);
      tr.appendChild(th);
      tr.appendChild(td);
      rows.appendChild(tr);
    });
    tbody.replaceChildren(rows);
    document.getElementById("live-total").textContent = (data.total || 0).toFixed(1);
    body.dataset.liveUpdates = String(Number(body.dataset.liveUpdates || 0) + 1);
  }

  function pollLive() {
    fetch(base + "/live.json", { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) { throw new Error("live counters: HTTP " + r.status); }
        return r.json();
      })
      .then(function (data) { renderLive(data); setStatus("updated " + new Date().toLocaleTimeString()); })
      .catch(function (e) { setStatus("disconnected (" + e.message + ")"); })
      .finally(function () { setTimeout(pollLive, 1000); });
  }

  var lastReport = "";
  function pollReport() {
    fetch(base + "/report", { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) { throw new Error("report: HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) {
        body.dataset.reportUpdates = String(Number(body.dataset.reportUpdates || 0) + 1);
        if (html === lastReport) { return; }
        lastReport = html;
        var open = {};
        document.querySelectorAll("#report details[open]").forEach(function (d) { open[d.dataset.chart] = true; });
        var report = document.getElementById("report");
        report.innerHTML = html;
        report.querySelectorAll("details").forEach(function (d) { if (open[d.dataset.chart]) { d.open = true; } });
      })
      .catch(function (e) { setStatus("charts not refreshed (" + e.message + ")"); })
      .finally(function () { setTimeout(pollReport, refreshMs); });
  }

  pollLive();
  setTimeout(pollReport, refreshMs);
})();
