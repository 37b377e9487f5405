// Live progress of a running run: polls the run's progress.json and appends new results
// without reloading the page. DOM nodes are built with textContent (no HTML from data).
"use strict";
(function () {
  const table = document.getElementById("results");
  if (!table || table.dataset.running !== "yes") return;
  const body = table.querySelector("tbody");
  const count = document.getElementById("run-count");
  const status = document.getElementById("run-status");
  let after = Number(table.dataset.after || 0);

  function badge(text) {
    const span = document.createElement("span");
    span.className = "badge st-" + text.toLowerCase();
    span.textContent = text;
    return span;
  }

  function cell(label, content) {
    const td = document.createElement("td");
    td.dataset.label = label;
    if (typeof content === "string") td.textContent = content; else td.appendChild(content);
    return td;
  }

  function hostLink(host) {
    const a = document.createElement("a");
    a.href = "/hosts/" + encodeURIComponent(host);
    a.textContent = host;
    return a;
  }

  async function poll() {
    let data;
    try {
      const response = await fetch(table.dataset.progress + "?after=" + after,
                                   {credentials: "same-origin", cache: "no-store"});
      if (!response.ok) throw new Error(String(response.status));
      data = await response.json();
    } catch (e) {
      setTimeout(poll, 5000);
      return;
    }
    for (const r of data.results) {
      const tr = document.createElement("tr");
      tr.className = "new";
      tr.append(cell("Time", r.time), cell("Host", hostLink(r.host)), cell("Check", r.name),
                cell("Status", badge(r.status)),
                cell("Summary", r.summary.length > 160 ? r.summary.slice(0, 157) + "..." : r.summary));
      body.appendChild(tr);
      after = Math.max(after, r.id);
    }
    count.textContent = String(body.rows.length);
    status.replaceChildren(badge(data.status));
    table.dataset.after = String(after);
    if (data.finished) {
      table.dataset.running = "no";
      return;
    }
    setTimeout(poll, 1500);
  }
  setTimeout(poll, 1000);
})();
