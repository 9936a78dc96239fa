// The 6767 layer's page: one EventSource, DOM updates in place, buttons POST to the control API.
"use strict";

const TOKEN = document.querySelector('meta[name="cis-token"]').content;
const $ = (sel) => document.querySelector(sel);
let source = null;
let current = null;          // selected run id
let offset = 0;              // server clock - our clock, seconds
let lastSnapshot = null;
const openForms = new Set(); // "run:idx" of change forms a person has open

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function badge(state) { return `<span class="badge s-${esc(state)}">${esc(state)}</span>`; }
function secs(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - 60 * m)} s`;
}
function bytes(n) {
  if (n === null || n === undefined) return "";
  const u = ["B", "KiB", "MiB", "GiB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}
function toast(msg) {
  const t = $("#toast"); t.textContent = msg; t.classList.add("show");
  clearTimeout(toast.timer); toast.timer = setTimeout(() => t.classList.remove("show"), 3500);
}

// --- live stream ------------------------------------------------------------------------------

function connect() {
  if (source) source.close();
  source = new EventSource("/api/events" + (current ? "?run=" + encodeURIComponent(current) : ""));
  source.addEventListener("snapshot", (ev) => render(JSON.parse(ev.data)));
  source.onopen = () => { $("#conn").textContent = "live"; $("#conn").className = "conn on"; };
  source.onerror = () => { $("#conn").textContent = "reconnecting"; $("#conn").className = "conn off"; };
}

function selectFromHash() {
  const m = location.hash.match(/run=([0-9A-Za-z]+)/);
  const id = m ? m[1] : null;
  if (id !== current) { current = id; connect(); }
}
window.addEventListener("hashchange", selectFromHash);

// --- rendering --------------------------------------------------------------------------------

function render(snap) {
  lastSnapshot = snap;
  offset = snap.now - Date.now() / 1000;
  renderRuns(snap.runs);
  renderDetail(snap.run);
  renderDebt(snap.debt);
  const c = snap.coffee;
  $("#coffee").textContent = c ? `network ${c.state}${c.rtt_ms !== null ? ` (${c.rtt_ms} ms)` : ""} · ` +
    `${c.queued} event(s) queued · ${c.sent_total} synced` : "";
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

function renderRuns(runs) {
  if (!current && runs.length) { location.hash = "run=" + runs[0].run_id; return; }
  $("#runs").innerHTML = runs.map((r) => {
    const done = Object.entries(r.counts).filter(([s]) => s !== "Pending" && s !== "Running")
      .reduce((a, [, n]) => a + n, 0);
    return `<a href="#run=${esc(r.run_id)}" class="${r.run_id === current ? "sel" : ""}" data-run="${esc(r.run_id)}">
      <span class="name">${esc(r.name)}</span>
      <span class="meta">${badge(r.state)} ${done}/${r.total} · ${esc(r.run_id.slice(0, 10))}
      ${r.waiting ? ` · <b>${r.waiting} waiting for you</b>` : ""}</span></a>`;
  }).join("") || `<p class="mut">No runs yet: <code>cis run ...</code></p>`;
}

function usageCells(u) {
  if (!u) return `<td class="num"></td><td class="num"></td>`;
  return `<td class="num">${u.cpu_percent === null ? "…" : u.cpu_percent.toFixed(0) + "%"}</td>
          <td class="num">${bytes(u.rss_bytes)}</td>`;
}

function renderDetail(run) {
  const el = $("#detail");
  if (!run) { el.innerHTML = `<p class="hint mut">Pick a run on the left.</p>`; return; }
  const busy = el.querySelector("form.change.open input:focus");
  const eta = run.eta_s === null ? "unknown (no earlier runs of these tasks)" : secs(run.eta_s);
  const head = `<h2>${esc(run.name)} ${badge(run.state)}</h2>
    <div class="bar"><div style="width:${(100 * run.progress).toFixed(1)}%"></div></div>
    <div class="mut" id="summary">${run.tasks.filter((t) => ["Completed", "Skipped", "Failed", "Debt"].includes(t.state)).length}/${run.total} done ·
      ETA ${esc(eta)} · sandbox ${esc(run.sandbox)} · policy ${esc(run.policy)} ·
      ${run.room ? `room ${esc(run.room)} (decisions are posted there)` : `engine ${run.engine_alive ? "running" : "not running"}`}${run.note ? " · " + esc(run.note) : ""}</div>`;
  const cur = run.current.length ? `<div class="current"><b>now:</b> ${run.current.map((c) =>
      `${esc(c.name)} (${secs(c.elapsed)}${c.usage ? `, CPU ${c.usage.cpu_percent ?? "…"}%, ${bytes(c.usage.rss_bytes)}, ${c.usage.processes} proc` : ""})${c.note ? " — " + esc(c.note) : ""}`).join("; ")}</div>` : "";
  const preview = run.preview && run.preview.length ? `<details class="preview"><summary>plan, capabilities
      (as <code>cis run</code> printed it)</summary><pre>${esc(run.preview.join("\n"))}</pre></details>` : "";
  const decisions = renderDecisions(run);
  const rows = run.tasks.map((t) => `<tr id="task-${t.idx}" data-state="${esc(t.state)}">
      <td class="num">${t.idx}</td><td>${esc(t.name)}${t.node ? ` <span class="mut">on ${esc(t.node)}</span>` : ""}</td><td>${esc(t.level)}</td>
      <td>${badge(t.state)}${t.needs_rerun ? ' <span class="badge s-Waiting">needs rerun</span>' : ""}</td>
      <td>${esc(t.deps.join(","))}</td><td class="num">${secs(t.elapsed)}</td>${usageCells(t.usage)}
      <td>${esc(t.note || "")}${t.error ? `<details><summary>${esc(t.error.what)}</summary>
        ${(t.error.why || []).map((w) => `<div class="why">why: ${esc(w)}</div>`).join("")}
        ${(t.error.how || []).map((h) => `<div class="how">how: ${esc(h)}</div>`).join("")}</details>` : ""}
        ${t.started ? ` <a href="/api/runs/${esc(run.run_id)}/tasks/${t.idx}/log?stream=stdout" target="_blank">out</a>
        <a href="/api/runs/${esc(run.run_id)}/tasks/${t.idx}/log?stream=stderr" target="_blank">err</a>` : ""}</td></tr>`).join("");
  const charts = run.tasks.filter((t) => t.state === "Completed").flatMap((t) => t.outputs
      .filter((o) => o.endsWith(".png")).map((o) => `<h3>report: ${esc(t.name)}</h3>
      <img class="chart" alt="${esc(o)}" src="/api/runs/${esc(run.run_id)}/tasks/${t.idx}/output?path=${encodeURIComponent(o)}">`)).join("");
  const table = `<h3>tasks</h3><table><thead><tr><th>#</th><th>task</th><th>level</th><th>state</th><th>deps</th>
      <th>time</th><th>CPU</th><th>mem</th><th>note</th></tr></thead><tbody>${rows}</tbody></table>`;
  if (busy) {  // a person is typing in a change form: keep it, refresh the rest
    el.querySelector("#head").innerHTML = head + cur;
    el.querySelector("#tasks").innerHTML = table;
    return;
  }
  const prevCharts = el.querySelector("#charts");
  const wasOpen = el.querySelector("details.preview")?.open ? " open" : "";
  el.innerHTML = `<div id="head">${head}${cur}</div>${preview.replace("<details", "<details" + wasOpen)}<div id="decisions">${decisions}</div>
    <div id="tasks">${table}</div><div id="charts"></div>`;
  // Keep loaded chart images (no flicker, no refetch) when nothing about them changed.
  if (prevCharts && prevCharts.dataset.key === charts) el.replaceChild(prevCharts, el.querySelector("#charts"));
  else { el.querySelector("#charts").innerHTML = charts; el.querySelector("#charts").dataset.key = charts; }
  tick();
}

function renderDecisions(run) {
  const d = run.decisions;
  const rid = esc(run.run_id);
  const rec = d.recommended.map((t) => `<div class="card recommended" data-task="${t.idx}">
      <b>Recommended:</b> ${esc(t.name)} will <b>${esc(t.level_params.default || "run")}</b> in
      <span class="countdown" data-until="${t.gate_until}">…</span>
      <div><code>${esc(t.cmd.join(" "))}</code></div>
      <div><button class="primary" data-act="run-now" data-task="${t.idx}">run now</button>
      <button data-act="skip" data-task="${t.idx}">skip</button>
      <button data-open="${t.idx}">change…</button></div>
      <form class="change ${openForms.has(run.run_id + ":" + t.idx) ? "open" : ""}" data-task="${t.idx}">
        <input name="env" placeholder="env: NAME=value NAME2=value">
        <input name="cmd" placeholder='cmd as JSON argv, e.g. ["make", "-j4"]'>
        <input name="timeout" placeholder="timeout seconds">
        <button type="submit">apply change</button></form></div>`).join("");
  const conf = d.confirmed.map((t) => t.gate === "answer" ? `<div class="card confirmed" data-task="${t.idx}">
      <b>Question:</b> ${esc(t.name)} needs an answer for ${esc((t.choice?.open || []).join(", "))}
      ${t.risk ? `<ul>${t.risk.map((r) => `<li>${esc(r)}</li>`).join("")}</ul>` : ""}
      <form class="answer" data-task="${t.idx}"><input name="value" placeholder="answer">
      <button type="submit" class="primary">answer</button></form></div>` :
    `<div class="card confirmed" data-task="${t.idx}"><b>Confirm:</b> ${esc(t.name)}
      <div class="mut">risk summary</div><ul class="risk">${(t.risk || []).map((r) => `<li>${esc(r)}</li>`).join("")}</ul>
      <button class="primary" data-act="confirm" data-task="${t.idx}">confirm</button>
      <button class="danger" data-act="cancel" data-task="${t.idx}">cancel</button></div>`).join("");
  const arb = d.arbitrated.map((t) => {
    const a = t.side_by_side.asked, h = t.side_by_side.happened;
    return `<div class="card arbitrated" data-task="${t.idx}"><b>Arbitrated:</b> ${esc(t.name)} — the DAG is paused
      ${a.stakeholders.length ? `<span class="mut">(stakeholders: ${esc(a.stakeholders.join(", "))})</span>` : ""}
      <div class="sbs"><div><b>asked</b><pre>${esc(a.cmd.join(" "))}</pre>
        ${Object.keys(a.env).length ? `<pre>${esc(Object.entries(a.env).map(([k, v]) => k + "=" + v).join("\n"))}</pre>` : ""}
        ${a.inputs.length ? `<div>inputs: ${esc(a.inputs.join(", "))}</div>` : ""}
        ${a.outputs.length ? `<div>outputs: ${esc(a.outputs.join(", "))}</div>` : ""}</div>
      <div><b>happened</b><div>${esc(h.what)}</div>
        ${h.why.map((w) => `<div class="why">why: ${esc(w)}</div>`).join("")}
        ${h.how.map((w) => `<div class="how">how: ${esc(w)}</div>`).join("")}
        ${h.open.length ? `<div>open: ${esc(h.open.join(", "))}</div>` : ""}</div></div>
      <div style="margin-top:.4em"><button class="primary" data-act="continue" data-task="${t.idx}">continue</button>
      <button data-resolve="retry" data-task="${t.idx}">retry</button>
      <button data-resolve="skip" data-task="${t.idx}">skip</button>
      <button data-resolve="complete" data-task="${t.idx}">mark complete</button>
      <button class="danger" data-resolve="fail" data-task="${t.idx}">fail</button></div></div>`;
  }).join("");
  if (!rec && !conf && !arb) return "";
  return `<h3>decisions</h3>${arb}${conf}${rec}`;
}

function renderDebt(debt) {
  const group = (kind, title) => {
    const items = debt.items.filter((i) => i.kind === kind);
    if (!items.length) return "";
    return `<h3>${title} (${items.length})</h3>` + items.map((i) => `<div class="card debt-item">
      <div class="what">${badge(i.state)} ${esc(i.task)} <span class="mut">· ${esc(i.dag)}</span></div>
      <div>${esc(i.what)}</div>${i.why.slice(0, 3).map((w) => `<div class="why">why: ${esc(w)}</div>`).join("")}
      ${i.how.slice(0, 2).map((h) => `<div class="how">how: ${esc(h)}</div>`).join("")}
      ${kind === "auto" ? `<button data-retry-run="${esc(i.run_id)}" data-task="${i.idx}">retry</button>` : ""}
      <a href="#run=${esc(i.run_id)}">open run</a></div>`).join("");
  };
  $("#debt").innerHTML = `<h2>debt</h2><p>${debt.total ? `This history has accumulated <b>${debt.total}</b> item(s) of debt;
      estimated fix time <b>${debt.estimate_minutes} min</b> <span class="mut">(${esc(debt.estimate_rule)})</span>.` :
      "No debt."}</p>${group("auto", "auto-fixable")}${group("person", "needs a person")}`;
}

function tick() {
  const now = Date.now() / 1000 + offset;
  document.querySelectorAll(".countdown").forEach((el) => {
    const left = Math.max(0, Number(el.dataset.until) - now);
    el.textContent = `${left.toFixed(0)} s`;
  });
}
setInterval(tick, 250);

// --- actions ----------------------------------------------------------------------------------

async function post(run, task, action, body) {
  const r = await fetch(`/api/runs/${encodeURIComponent(run)}/tasks/${task}/${action}`, {
    method: "POST", headers: {"Content-Type": "application/json", "X-CIS-Token": TOKEN},
    body: JSON.stringify(body || {}),
  });
  const j = await r.json();
  toast(r.ok ? `${action} task ${task}: ${j.result}` :
    `${action} failed: ${j.error || j.result}${j.how ? " — " + j.how : ""}`);
  return j;
}

document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button");
  if (!b) return;
  if (b.dataset.act) { ev.preventDefault(); post(current, b.dataset.task, b.dataset.act); }
  else if (b.dataset.resolve) { ev.preventDefault(); post(current, b.dataset.task, "resolve", {action: b.dataset.resolve}); }
  else if (b.dataset.retryRun) { ev.preventDefault(); post(b.dataset.retryRun, b.dataset.task, "retry"); }
  else if (b.dataset.open) {
    ev.preventDefault();
    const key = current + ":" + b.dataset.open;
    const form = document.querySelector(`form.change[data-task="${b.dataset.open}"]`);
    if (openForms.has(key)) { openForms.delete(key); form.classList.remove("open"); }
    else { openForms.add(key); form.classList.add("open"); }
  }
});

document.addEventListener("submit", (ev) => {
  const f = ev.target;
  ev.preventDefault();
  if (f.classList.contains("answer")) { post(current, f.dataset.task, "resolve", {value: f.value.value}); return; }
  if (!f.classList.contains("change")) return;
  const body = {};
  const env = f.env.value.trim();
  if (env) body.env = Object.fromEntries(env.split(/\s+/).map((kv) => [kv.split("=")[0], kv.split("=").slice(1).join("=")]));
  if (f.cmd.value.trim()) {
    try { body.cmd = JSON.parse(f.cmd.value); } catch (e) { toast("cmd must be a JSON list of strings"); return; }
  }
  if (f.timeout.value.trim()) body.timeout = Number(f.timeout.value);
  openForms.delete(current + ":" + f.dataset.task);
  post(current, f.dataset.task, "change", body);
});

selectFromHash();
if (!source) connect();
