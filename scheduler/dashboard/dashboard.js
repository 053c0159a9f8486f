// Drover's dashboard: reads /api/state, follows /api/events (server-sent
// events) and redraws; no framework, no build step. Every value from the
// server goes into the page as text (textContent), never as markup.
"use strict";

const state = { data: null, jobs: new Map(), source: null, refreshTimer: null };
// How long a job heard of by an event or an action's reply stays listed
// when the state fetched since does not have it yet.
const JOB_KEEP_MS = 10000;

// --- formatting -----------------------------------------------------------

function fmtBytes(n) {
  if (n === null || n === undefined || !isFinite(n)) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
}
function fmtRate(n) { return (n === null || !isFinite(n)) ? "-" : fmtBytes(n) + "/s"; }
function fmtSeconds(s) {
  if (s === null || s === undefined || !isFinite(s) || s < 0) return "-";
  if (s < 1) return Math.round(s * 1000) + "ms";
  if (s < 120) return s.toFixed(1) + "s";
  if (s < 7200) return Math.floor(s / 60) + "m" + String(Math.round(s % 60)).padStart(2, "0") + "s";
  return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
}
function fmtTime(ms) { return ms ? new Date(ms).toLocaleTimeString() : "-"; }
function pct(x) { return isFinite(x) ? Math.round(x * 100) + "%" : "-"; }

// --- DOM helpers -----------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}
function td(text, cls) { return el("td", cls ? { class: cls } : {}, text); }
function stateCell(s) { return td(s || "-", "state state-" + (s || "none")); }
// "up", or "up, draining" for a host out of service (coloured by the latter).
function hostStateCell(h) {
  if (!h.maintenance) return stateCell(h.state);
  return td((h.state || "-") + ", " + h.maintenance, "state state-" + h.maintenance);
}
function bar(fraction, label) {
  const f = isFinite(fraction) ? Math.max(0, Math.min(1, fraction)) : 0;
  const fill = el("span");
  fill.style.width = (f * 100).toFixed(1) + "%";
  return el("td", {}, el("span", { class: "bar" + (f > 0.9 ? " hot" : "") }, fill),
            el("span", { class: "bar-label" }, label));
}
function fillBody(table, rows) {
  const body = document.querySelector(table + " tbody");
  body.replaceChildren(...rows);
}

// --- rendering ---------------------------------------------------------------

function renderHosts(d) {
  fillBody("#hosts", d.hosts.map(h => el("tr", { "data-host": h.name },
    td(h.name, "name"), hostStateCell(h), td(h.vm_count, "num"),
    bar(h.cpu_load, h.vcpus_used + " / " + h.cpus + " CPUs (" + pct(h.cpu_load) + ")"),
    bar(h.memory_load, fmtBytes(h.memory_used) + " / " + fmtBytes(h.memory_total)),
    td(h.accel || "-"), actCell(h.state === "up" && !h.maintenance ?
      [["Drain…", "drain-host", "drain-form", h.name]] : []))));
}

// Buttons in a row pick the row's host or VM in an action form (the form
// then starts the job): nothing starts from a single stray click.
function actCell(buttons) {
  const cell = el("td", { class: "act" });
  if (!(state.data && state.data.me && state.data.me.may_act)) return cell;
  for (const [label, select, form, value] of buttons)
    cell.append(el("button", { type: "button", class: "pick", "data-pick": select,
      onclick: () => pick(select, form, value) }, label));
  return cell;
}
function pick(select, form, value) {
  document.getElementById(select).value = value;
  const f = document.getElementById(form);
  f.classList.add("picked");
  setTimeout(() => f.classList.remove("picked"), 1500);
  f.scrollIntoView({ block: "nearest" });
}

function renderVms(d) {
  fillBody("#vms", d.vms.map(v => el("tr", { "data-vm": v.name },
    td(v.template ? v.name + " (template)" : v.name, "name"), stateCell(v.state), td(v.host, "host"), td(v.vcpus, "num"),
    td(isFinite(v.cpu_percent) ? v.cpu_percent.toFixed(1) + "%" : "-", "num"),
    td(fmtBytes(v.memory), "num"), td(v.memory_rss ? fmtBytes(v.memory_rss) : "-", "num"),
    actCell(v.template ? [] : [
      ...(v.state === "running" ? [["Migrate…", "migrate-vm", "migrate-form", v.name]] : []),
      ["Snapshot…", "snapshot-vm", "snapshot-form", v.name],
      ...(v.state === "running" || v.state === "shutoff" ? [["Back up…", "backup-vm", "backup-form", v.name]] : [])]))));
}

// QEMU measures the dirty rate only at a bitmap sync: through the first
// round it reads 0, which means "not measured yet", not "idle" (as the CLI).
function dirtyText(m) {
  if (!(m.dirty_rate > 0) && (m.iteration || 0) <= 1) return "measuring";
  return fmtRate(m.dirty_rate);
}

function renderJobs() {
  const jobs = [...state.jobs.values()].sort((a, b) => a.created_ms - b.created_ms);
  fillBody("#jobs", jobs.map(j => {
    const m = j.migration || {};
    const route = j.source_host || j.dest_host ? (j.source_host || "?") + " → " + (j.dest_host || "?") : "-";
    return el("tr", { "data-job": j.id, "data-kind": j.kind, "data-vm": j.vm },
      td(j.id.slice(0, 8), "id"), td(j.kind), td(j.vm, "vm"), td(route),
      stateCell(j.state), td(m.phase || (j.storage && j.storage.phase) || "-", "phase"), td(m.iteration || "-", "num round"),
      td(j.migration ? fmtBytes(m.memory_remaining) : "-", "num remaining"),
      td(j.migration ? dirtyText(m) : "-", "num dirty"),
      td(j.migration ? fmtSeconds(m.eta_s) : "-", "num eta"),
      bar(j.progress, pct(j.progress) + (j.message ? "  " + j.message : "")));
  }));
  document.getElementById("no-jobs").hidden = jobs.length > 0;
}

function renderMigrations(d) {
  fillBody("#migrations", d.migrations.map(m => el("tr", { "data-job": m.id },
    td(m.vm), td((m.source_host || "?") + " → " + (m.dest_host || "?")),
    el("td", { class: "state state-" + m.state, title: m.error || "" }, m.state),
    td(fmtSeconds(m.predicted_s), "num"), td(fmtSeconds(m.measured_s), "num"),
    td(fmtSeconds(m.predicted_downtime_ms / 1000) + " / " + fmtSeconds(m.measured_downtime_ms / 1000), "num"),
    td(fmtTime(m.ended_ms)))));
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// The imbalance over time: a polyline as wide as the chart is drawn (so
// that text is not stretched), y from 0 to the larger of 0.5 and the
// highest sample.
function renderChart(d) {
  const chart = document.getElementById("imbalance-chart");
  const pts = d.imbalance_history.filter(p => p[1] !== null);
  document.getElementById("imbalance-now").textContent =
    isFinite(d.imbalance) ? d.imbalance.toFixed(3) : "-";
  const W = Math.max(200, Math.round(chart.getBoundingClientRect().width) || 600), H = 160, pad = 18;
  chart.setAttribute("viewBox", "0 0 " + W + " " + H);
  const top = Math.max(0.5, ...pts.map(p => p[1]));
  const children = [];
  for (const g of [0, 0.5, 1]) {
    const y = H - pad - g * (H - 2 * pad);
    children.push(svg("line", { class: "grid", x1: 30, x2: W, y1: y, y2: y }));
    children.push(svg("text", { x: 2, y: y + 3 }, (g * top).toFixed(2)));
  }
  if (pts.length > 0) {
    const t0 = pts[0][0], t1 = Math.max(pts[pts.length - 1][0], t0 + 1);
    const xy = pts.map(p => {
      const x = 30 + (p[0] - t0) / (t1 - t0) * (W - 32);
      const y = H - pad - p[1] / top * (H - 2 * pad);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    if (xy.length === 1) xy.push((W - 2) + "," + xy[0].split(",")[1]);
    children.push(svg("polyline", { points: xy.join(" ") }));
    children.push(svg("text", { x: 30, y: H - 3 }, fmtTime(t0)));
    children.push(svg("text", { x: W - 2, y: H - 3, "text-anchor": "end" }, fmtTime(t1)));
  }
  chart.replaceChildren(...children);
}

// Replaces the options of select ID with VALUES, keeping the choice.
function setOptions(id, values, first) {
  const sel = document.getElementById(id);
  const keep = sel.value;
  sel.replaceChildren(...(first ? [el("option", { value: "" }, first)] : []),
    ...values.map(v => el("option", { value: v }, v)));
  if (keep && values.includes(keep)) sel.value = keep;
}

function renderActions(d) {
  const may = d.me && d.me.may_act;
  document.getElementById("actions").hidden = !may;
  if (!may) return;
  const vms = d.vms.filter(v => !v.template);
  const running = vms.filter(v => v.state === "running").map(v => v.name);
  setOptions("migrate-vm", running);
  setOptions("migrate-to", d.hosts.filter(h => h.state === "up" && !h.maintenance).map(h => h.name), "best host");
  setOptions("snapshot-vm", vms.map(v => v.name));
  setOptions("backup-vm", vms.filter(v => v.state === "running" || v.state === "shutoff").map(v => v.name));
  setOptions("drain-host", d.hosts.filter(h => h.state === "up" && !h.maintenance).map(h => h.name));
  const snap = document.getElementById("snapshot-name");
  if (!snap.value) snap.value = "dash-" + new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
}

function render() {
  const d = state.data;
  document.getElementById("who").textContent =
    (d.me.name || "insecure") + " (" + d.me.role + ")";
  // Jobs from the state, unless an event told something newer.
  const fresh = new Map();
  for (const j of d.jobs) {
    const live = state.jobs.get(j.id);
    fresh.set(j.id, live && live.updated_ms > j.updated_ms ? live : j);
  }
  // A job this page started or heard of a moment ago may be newer than
  // the state it fetched: keep it a while (job.ended removes it).
  const now = Date.now();
  for (const [id, j] of state.jobs) {
    if (!fresh.has(id) && j.state !== "done" && j.state !== "failed"
        && now - (j.seen_ms || 0) < JOB_KEEP_MS) fresh.set(id, j);
  }
  state.jobs = fresh;
  renderHosts(d); renderVms(d); renderJobs(); renderMigrations(d); renderChart(d); renderActions(d);
}

// --- data --------------------------------------------------------------------

async function load() {
  let r;
  try {
    r = await fetch("/api/state", { credentials: "same-origin", cache: "no-store" });
  } catch (e) {
    setLive(false);
    return;
  }
  if (r.status === 401) {
    document.getElementById("cluster").hidden = true;
    document.getElementById("login").hidden = false;
    if (state.source) { state.source.close(); state.source = null; }
    return;
  }
  if (!r.ok) return;
  state.data = await r.json();
  document.getElementById("login").hidden = true;
  document.getElementById("cluster").hidden = false;
  render();
  if (!state.source) connect();
}

function refreshSoon() {
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(() => { state.refreshTimer = null; load(); }, 300);
}

function setLive(on) { document.getElementById("live").classList.toggle("on", on); }

function logEvent(ev) {
  const list = document.getElementById("events");
  const who = [ev.vm && "vm=" + ev.vm, ev.host && "host=" + ev.host].filter(Boolean).join(" ");
  list.prepend(el("li", { "data-kind": ev.kind },
    fmtTime(ev.time_ms) + "  " + ev.kind + "  " + who + "  " + (ev.message || "")));
  while (list.children.length > 50) list.lastChild.remove();
}

function onEvent(ev) {
  logEvent(ev);
  if (ev.job && ev.kind !== "job.ended") {
    ev.job.seen_ms = Date.now();
    state.jobs.set(ev.job.id, ev.job);
    renderJobs();
    if (ev.kind === "job.started") refreshSoon();
    return;
  }
  if (ev.job) state.jobs.delete(ev.job.id);
  renderJobs();
  refreshSoon();
}

function connect() {
  const source = new EventSource("/api/events");
  state.source = source;
  source.onopen = () => { setLive(true); refreshSoon(); };
  source.onmessage = m => onEvent(JSON.parse(m.data));
  // The browser reconnects by itself; a lost login shows on the next load.
  source.onerror = () => { setLive(false); refreshSoon(); };
}

// POSTs BODY to /api/ACTION and tells in #ACTION-result how it went: the
// job (which then shows live under Jobs) or the server's reason.
async function act(action, body) {
  const out = document.getElementById(action + "-result");
  out.textContent = "starting…";
  out.removeAttribute("data-job");
  out.className = "result";
  let r, reply;
  try {
    r = await fetch("/api/" + action, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    reply = await r.json().catch(() => ({}));
  } catch (e) {
    out.textContent = "refused: " + e;
    out.className = "result refused";
    return;
  }
  if (r.ok && reply.id) {
    out.textContent = "job " + reply.id.slice(0, 8) + " " + reply.state;
    out.setAttribute("data-job", reply.id);
    out.className = "result ok";
    reply.seen_ms = Date.now();
    state.jobs.set(reply.id, reply);
    renderJobs();
  } else {
    out.textContent = "refused: " + (reply.error || r.status);
    out.className = "result refused";
  }
  refreshSoon();
}

function onSubmit(action, fields) {
  document.getElementById(action + "-form").addEventListener("submit", e => {
    e.preventDefault();
    const body = {};
    for (const [key, id] of Object.entries(fields)) body[key] = document.getElementById(id).value.trim();
    act(action, body);
    if (action === "snapshot") document.getElementById("snapshot-name").value = "";
  });
}

document.addEventListener("DOMContentLoaded", () => {
  onSubmit("migrate", { vm: "migrate-vm", to: "migrate-to" });
  onSubmit("snapshot", { vm: "snapshot-vm", name: "snapshot-name" });
  onSubmit("backup", { vm: "backup-vm", repo: "backup-repo" });
  onSubmit("drain", { host: "drain-host" });
  load();
  // CPU figures and the chart move without events: a slow refresh.
  setInterval(load, 5000);
});
