// Socket.IO trace monitor dashboard: no build step, no external assets.
// Every string that comes from the traffic is put into the page with textContent only.
"use strict";

const LOG_MAX = 2000;        // activity rows kept in the browser
const LOG_SHOWN = 300;       // activity rows rendered
const PAUSED_MAX = 5000;     // items held while the log is paused
const SESSIONS_PAGE = 50;
const TIMEOUT_SHOWN_S = 60;  // how long a timed-out request stays highlighted in "pending"

const $ = (id) => document.getElementById(id);

const state = {
  clockOffset: 0,            // browser time minus server time, seconds
  pending: [],
  timeouts: [],
  history: [],
  rules: [],
  log: [],
  maxSeq: 0,
  paused: false,
  pausedBuf: [],
  pausedDropped: 0,
  skipped: 0,
  sessionsOffset: 0,
  selectedSid: null,
  source: null,
  renderQueued: false,
};

// ---- formatting ----
function fmtDur(s) {
  if (s === null || s === undefined) return "–";
  if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : 1) + " ms";
  if (s < 120) return s.toFixed(2) + " s";
  return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
}
function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1024) return n + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1048576).toFixed(1) + " MiB";
}
function fmtTime(wall) {
  const d = new Date(wall * 1000);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}
function shortSid(sid) { return sid && sid.length > 12 ? sid.slice(0, 12) + "…" : (sid || ""); }
function serverNow() { return Date.now() / 1000 - state.clockOffset; }
function sum(obj) { return Object.values(obj || {}).reduce((a, b) => a + b, 0); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null) continue;
      if (k === "class") node.className = v;
      else if (k === "title") node.title = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
function td(text, cls) { return el("td", { class: cls }, text); }
function replaceRows(tbody, rows) { tbody.replaceChildren(...rows); }

// ---- filters & export links ----
function filterParams() {
  const p = new URLSearchParams();
  const add = (k, id) => { const v = $(id).value.trim(); if (v) p.set(k, v); };
  add("session", "f-session"); add("event", "f-event");
  add("outcome", "f-outcome"); add("direction", "f-direction");
  return p;
}
function updateExportLinks() {
  for (const fmt of ["json", "csv", "ndjson"]) {
    const p = filterParams(); p.set("format", fmt);
    $("export-" + fmt).href = "/api/export?" + p.toString();
  }
}

// ---- live stream ----
function connect() {
  if (state.source) state.source.close();
  const src = new EventSource("/api/stream?" + filterParams().toString());
  state.source = src;
  src.addEventListener("hello", (ev) => onHello(JSON.parse(ev.data)));
  src.addEventListener("update", (ev) => onUpdate(JSON.parse(ev.data)));
  src.onopen = () => setConn(true);
  src.onerror = () => {
    setConn(false);
    // A 401 closes the EventSource for good; find out whether we must log in.
    if (src.readyState === EventSource.CLOSED) {
      fetch("/api/metrics").then((r) => { if (r.status === 401) location.href = "/login"; });
      setTimeout(connect, 3000);
    }
  };
}
function setConn(on) {
  const b = $("conn-status");
  b.textContent = on ? "live" : "reconnecting";
  b.className = "badge " + (on ? "on" : "off");
}

function onHello(msg) {
  state.clockOffset = Date.now() / 1000 - msg.t;
  state.history = msg.latency_history || [];
  state.log = msg.activity.items.slice(-LOG_MAX);
  state.maxSeq = Math.max(msg.activity.last_seq || 0, ...state.log.map((i) => i.seq));
  state.pausedBuf = [];
  state.pausedDropped = 0;
  state.skipped = 0;
  setConn(true);
  scheduleRender();
}

function onUpdate(msg) {
  const shared = msg.shared;
  state.clockOffset = Date.now() / 1000 - shared.t;
  state.pending = shared.pending.items;
  state.pendingTotal = shared.pending.total;
  state.timeouts = shared.timeouts || [];
  state.rules = shared.metrics.rules;
  state.metrics = shared.metrics;
  state.rates = shared.rates;
  state.sinks = shared.sinks;
  state.history.push(shared.latency);
  if (state.history.length > 600) state.history.splice(0, state.history.length - 600);
  const fresh = msg.activity.items.filter((i) => i.seq > state.maxSeq);
  if (fresh.length) state.maxSeq = fresh[fresh.length - 1].seq;
  state.skipped += (msg.activity.skipped || 0) + (msg.activity.lost || 0);
  if (state.paused) {
    state.pausedBuf.push(...fresh);
    if (state.pausedBuf.length > PAUSED_MAX) {
      state.pausedDropped += state.pausedBuf.length - PAUSED_MAX;
      state.pausedBuf.splice(0, state.pausedBuf.length - PAUSED_MAX);
    }
  } else {
    appendLog(fresh);
  }
  const warn = [];
  if (msg.dropped_updates) warn.push(msg.dropped_updates + " updates dropped (slow connection)");
  if (state.skipped) warn.push(state.skipped + " activity items not shown (too many per update)");
  $("stream-warn").hidden = warn.length === 0;
  $("stream-warn").textContent = warn.join(" · ");
  scheduleRender();
}

function appendLog(items) {
  state.log.push(...items);
  if (state.log.length > LOG_MAX) state.log.splice(0, state.log.length - LOG_MAX);
}

function scheduleRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(() => {
    state.renderQueued = false;
    renderHeader(); renderPending(); renderRules(); renderChart();
    if (!state.paused) renderLog();
    renderPausedCount();
  });
}

// ---- header ----
// Where each exporter's data is found in OpenObserve (it normalizes stream names and turns
// every "." of a key into "_"); default stream names, see README "What you find in OpenObserve".
const SINK_HINTS = {
  "openobserve-traces": "\nOpenObserve: Traces, stream \"default\"; fields such as " +
    "operation_name, messaging_socket_io_sid, socket_request_event, error_type, span_status",
  "openobserve-json": "\nOpenObserve: Logs, stream \"socket_io_traces\" (configured as " +
    "socket-io-traces); fields such as operation_name, socket_sid, socket_request_event, status",
};

function renderHeader() {
  const m = state.metrics;
  if (!m) return;
  $("stat-sessions").textContent = sum(m.sessions_by_transport);
  $("stat-transports").textContent = Object.entries(m.sessions_by_transport)
    .map(([t, n]) => t + " " + n).join(" · ");
  $("stat-pending").textContent = m.pending;
  const r = (state.rates && state.rates.messages_per_s) || {};
  $("stat-rate").textContent = Math.round(r.c2s || 0) + " · " + Math.round(r.s2c || 0);
  $("stat-rtt").textContent = fmtDur(m.heartbeat_rtt.p50_s);
  $("stat-decode").textContent = m.decode_errors;
  const sinks = (state.sinks || []).map((s) => {
    const st = s.state || (s.healthy ? "ok" : "unhealthy");
    return el("span", {
      class: "badge sink " + (s.healthy ? "on" : "off"),
      title: `${s.name}: ${st} · sent ${s.sent} · failed ${s.failed} · dropped ${s.dropped}` +
        ` · queued ${s.queued}` + (s.text_replaced ? ` · text replaced ${s.text_replaced}` : "") +
        (s.last_error ? " · " + s.last_error : "") + (SINK_HINTS[s.name] || ""),
    }, st === "ok" ? s.name : `${s.name} (${st})`);
  });
  $("stat-exporters").replaceChildren(...(sinks.length ? sinks : ["none"]));
}

// ---- pending ----
function renderPending() {
  const now = serverNow();
  const rows = [];
  for (const t of state.timeouts) {
    if (now - (t.start_wall + t.duration_s) > TIMEOUT_SHOWN_S) continue;
    rows.push(el("tr", { class: "pending-row timed-out", "data-span": t.span_id },
      td("timed out", "num"), td(fmtDur(t.duration_s), "num"), td(t.operation), td(t.request_event),
      td(t.ack_id ?? ""), td(t.initiator), td(shortSid(t.session.session_id), "mono")));
  }
  for (const p of state.pending) {
    const tr = el("tr", { class: "pending-row", "data-span": p.span_id },
      el("td", { class: "num age", "data-start": p.started_wall, "data-timeout": p.timeout_s }),
      td(fmtDur(p.timeout_s), "num"), td(p.operation), td(p.request_event), td(p.ack_id ?? ""),
      td(p.initiator), td(shortSid(p.session_id), "mono"));
    rows.push(tr);
  }
  replaceRows($("pending-table").tBodies[0], rows);
  $("pending-total").textContent = state.pendingTotal || 0;
  $("pending-empty").hidden = rows.length > 0;
  tickAges();
}
function tickAges() {
  const now = serverNow();
  for (const cell of document.querySelectorAll("#pending-table td.age")) {
    const age = Math.max(0, now - Number(cell.dataset.start));
    cell.textContent = fmtDur(age);
    cell.parentElement.classList.toggle("overdue", age >= Number(cell.dataset.timeout));
  }
}

// ---- rules ----
function renderRules() {
  const sel = $("latency-rule");
  const known = new Set([...sel.options].map((o) => o.value));
  const rows = state.rules.map((r) => {
    if (!known.has(r.rule)) sel.append(el("option", { value: r.rule }, r.rule));
    const o = r.outcomes;
    const count = sum(o);
    const tr = el("tr", { class: "rule-row", "data-rule": r.rule },
      td(r.rule), td(count, "num"), td(o.error || 0, "num"), td(o.timeout || 0, "num"),
      td(o.late || 0, "num"), td(r.slow, "num"), td(fmtDur(r.latency.p50_s), "num"),
      td(fmtDur(r.latency.p95_s), "num"), td(fmtDur(r.latency.p99_s), "num"),
      td(fmtDur(r.latency.max_s), "num"));
    if (o.timeout) tr.classList.add("outcome-timeout");
    tr.addEventListener("click", () => { sel.value = r.rule; renderChart(); });
    return tr;
  });
  replaceRows($("rules-table").tBodies[0], rows);
}

// ---- latency chart (canvas) ----
const COLORS = ["#58a6ff", "#3fb950", "#d29922", "#bc8cff", "#ff7b72", "#39c5cf"];
function renderChart() {
  const canvas = $("latency-chart");
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight || 220;
  if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pts = state.history;
  const chosen = $("latency-rule").value;
  let rules;
  if (chosen) rules = [chosen];
  else {
    const totals = {};
    for (const p of pts) for (const [r, v] of Object.entries(p.rules)) totals[r] = (totals[r] || 0) + v.n;
    rules = Object.entries(totals).sort((a, b) => b[1] - a[1]).slice(0, COLORS.length).map((e) => e[0]);
  }
  let ymax = 0;
  for (const p of pts) for (const r of rules) { const v = p.rules[r]; if (v && v.p95 !== null) ymax = Math.max(ymax, v.p95); }
  const left = 62, right = 10, top = 10, bottom = 22;
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#8594a5"; ctx.strokeStyle = "#2a3441"; ctx.lineWidth = 1;
  if (pts.length < 2 || ymax === 0) {
    ctx.fillText("no finished requests yet", left, h / 2);
    return;
  }
  ymax *= 1.1;
  const t0 = pts[0].t, t1 = pts[pts.length - 1].t, span = Math.max(t1 - t0, 1);
  const x = (t) => left + (w - left - right) * (t - t0) / span;
  const y = (v) => h - bottom - (h - top - bottom) * v / ymax;
  for (let i = 0; i <= 4; i++) {
    const v = ymax * i / 4;
    ctx.beginPath(); ctx.moveTo(left, y(v)); ctx.lineTo(w - right, y(v)); ctx.stroke();
    ctx.fillText(fmtDur(v), 4, y(v) + 4);
  }
  ctx.fillText(fmtTime(t0).slice(0, 8), left, h - 6);
  ctx.fillText(fmtTime(t1).slice(0, 8), w - right - 50, h - 6);
  rules.forEach((rule, i) => {
    ctx.strokeStyle = COLORS[i % COLORS.length];
    // Intervals in which nothing of this rule finished are skipped, not drawn as zero.
    for (const [key, dash] of [["p95", []], ["p50", [4, 3]]]) {
      const xy = pts.filter((p) => p.rules[rule] && p.rules[rule][key] !== null)
        .map((p) => [x(p.t), y(p.rules[rule][key])]);
      ctx.setLineDash(dash); ctx.lineWidth = key === "p95" ? 1.8 : 1.2;
      ctx.beginPath();
      xy.forEach(([px, py], j) => (j ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
      ctx.stroke();
      if (key === "p95") {
        ctx.fillStyle = COLORS[i % COLORS.length];
        for (const [px, py] of xy) { ctx.beginPath(); ctx.arc(px, py, 2.5, 0, 2 * Math.PI); ctx.fill(); }
      }
    }
    ctx.setLineDash([]);
    ctx.fillStyle = COLORS[i % COLORS.length];
    ctx.fillText(rule, left + 8 + i * 150, top + 10);
  });
}

// ---- sessions & waterfall ----
async function getJson(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" } });
  if (r.status === 401) { location.href = "/login"; throw new Error("unauthorized"); }
  if (!r.ok) throw new Error(url + ": " + r.status);
  return r.json();
}
async function loadSessions() {
  if (document.hidden) return;
  const p = new URLSearchParams({ limit: SESSIONS_PAGE, offset: state.sessionsOffset });
  const q = $("sessions-search").value.trim();
  if (q) p.set("q", q);
  let data;
  try { data = await getJson("/api/sessions?" + p.toString()); } catch (e) { return; }
  const now = serverNow();
  const rows = data.items.map((s) => {
    const tr = el("tr", { class: "session-row", "data-sid": s.session_id, title: s.session_id },
      td(shortSid(s.session_id), "mono"), td(s.transport + (s.upgraded ? " ↑" : "")), td(s.remote || ""),
      td(fmtDur(now - s.opened_wall), "num"), td(s.namespaces.join(" ")), td(s.pending, "num"),
      td(s.messages_in + " / " + s.messages_out, "num"), td(fmtBytes(s.bytes_in) + " / " + fmtBytes(s.bytes_out), "num"),
      td(fmtDur(s.heartbeat_rtt_s), "num"));
    if (s.session_id === state.selectedSid) tr.classList.add("selected");
    tr.addEventListener("click", () => selectSession(s.session_id));
    return tr;
  });
  replaceRows($("sessions-table").tBodies[0], rows);
  $("sessions-total").textContent = data.total;
  $("sessions-page").textContent = Math.floor(state.sessionsOffset / SESSIONS_PAGE) + 1;
}
function selectSession(sid) {
  state.selectedSid = sid;
  for (const tr of document.querySelectorAll("tr.session-row")) tr.classList.toggle("selected", tr.dataset.sid === sid);
  loadWaterfall();
}
function collectPairs(node, out) {
  if (Array.isArray(node)) { for (const v of node) collectPairs(v, out); return; }
  if (node && typeof node === "object") {
    if (node.type === "pair" && typeof node.duration_s === "number") { out.push(node); return; }
    for (const v of Object.values(node)) collectPairs(v, out);
  }
}
async function loadWaterfall() {
  const sid = state.selectedSid;
  if (!sid || document.hidden) return;
  let data;
  try { data = await getJson("/api/sessions/" + encodeURIComponent(sid)); } catch (e) { return; }
  if (sid !== state.selectedSid) return;
  $("waterfall-sid").textContent = sid;
  const s = data.session;
  $("waterfall-meta").textContent = s
    ? `${s.transport}${s.upgraded ? " (upgraded)" : ""} · ${s.remote || "?"} · heartbeat RTT ${fmtDur(s.heartbeat_rtt_s)} · ${s.pending} pending`
    : "closed session";
  const pairs = [];
  collectPairs(data.timeline, pairs);
  const seen = new Set();
  const uniq = pairs.filter((p) => !seen.has(p.span_id) && seen.add(p.span_id));
  uniq.sort((a, b) => a.start_wall - b.start_wall);
  const shown = uniq.slice(-100);
  if (!shown.length) { $("waterfall").replaceChildren(el("p", { class: "empty" }, "No request/reply pairs yet.")); return; }
  const t0 = shown[0].start_wall;
  const t1 = Math.max(...shown.map((p) => p.start_wall + p.duration_s));
  const span = Math.max(t1 - t0, 0.001);
  const rows = shown.map((p) => {
    const bar = el("div", { class: "wf-bar outcome-" + p.outcome, title: `${p.operation} · ${p.outcome} · ${fmtDur(p.duration_s)}` });
    bar.style.left = (100 * (p.start_wall - t0) / span) + "%";
    bar.style.width = Math.max(0.3, 100 * p.duration_s / span) + "%";
    return el("div", { class: "wf-row", "data-span": p.span_id },
      el("span", { class: "wf-label", title: p.operation }, p.operation),
      el("div", { class: "wf-track" }, bar),
      el("span", { class: "wf-dur" }, fmtDur(p.duration_s)));
  });
  $("waterfall").replaceChildren(...rows);
}

// ---- activity log ----
function describe(rec) {
  if (rec.type === "pair") {
    return { dir: rec.initiator, name: rec.operation, outcome: rec.outcome, dur: rec.duration_s,
      size: rec.request_size + rec.response_size, wall: rec.start_wall };
  }
  if (rec.type === "message") {
    return { dir: rec.direction, name: rec.event, outcome: null, dur: null, size: rec.size, wall: rec.wall };
  }
  return { dir: "", name: rec.kind + (rec.namespace ? " " + rec.namespace : "") + (rec.error ? ": " + rec.error : ""),
    outcome: rec.ok ? "ok" : "error", dur: rec.duration_s, size: null, wall: rec.start_wall };
}
function renderLog() {
  const items = state.log.slice(-LOG_SHOWN).reverse();
  const rows = items.map((item) => {
    const rec = item.record, d = describe(rec);
    const tr = el("tr", { class: "act-row type-" + rec.type + (d.outcome ? " outcome-" + d.outcome : ""), "data-seq": item.seq },
      td(item.seq, "num"), td(fmtTime(d.wall), "mono"), td(rec.type), td(d.dir), td(d.name),
      el("td", null, d.outcome ? el("span", { class: "pill " + d.outcome }, d.outcome) : ""),
      td(d.dur === null ? "" : fmtDur(d.dur), "num"), td(d.size === null ? "" : fmtBytes(d.size), "num"),
      td(shortSid(rec.session.session_id), "mono"));
    tr.title = rec.session.session_id;
    return tr;
  });
  replaceRows($("activity-table").tBodies[0], rows);
}
function renderPausedCount() {
  $("paused-count").textContent = state.paused
    ? `paused · ${state.pausedBuf.length} new` + (state.pausedDropped ? ` (${state.pausedDropped} dropped)` : "")
    : "";
}
function togglePause() {
  state.paused = !state.paused;
  $("pause-btn").textContent = state.paused ? "Resume" : "Pause";
  $("pause-btn").setAttribute("aria-pressed", String(state.paused));
  if (!state.paused) {
    appendLog(state.pausedBuf);
    state.pausedBuf = [];
    state.pausedDropped = 0;
  }
  scheduleRender();
}

let filterTimer = null;
function onFilterChange() {
  updateExportLinks();
  clearTimeout(filterTimer);
  filterTimer = setTimeout(connect, 250);
}

// ---- start ----
document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["f-session", "f-event"]) $(id).addEventListener("input", onFilterChange);
  for (const id of ["f-outcome", "f-direction"]) $(id).addEventListener("change", onFilterChange);
  $("pause-btn").addEventListener("click", togglePause);
  $("latency-rule").addEventListener("change", renderChart);
  $("sessions-search").addEventListener("input", () => { state.sessionsOffset = 0; loadSessions(); });
  $("sessions-prev").addEventListener("click", () => { state.sessionsOffset = Math.max(0, state.sessionsOffset - SESSIONS_PAGE); loadSessions(); });
  $("sessions-next").addEventListener("click", () => { state.sessionsOffset += SESSIONS_PAGE; loadSessions(); });
  window.addEventListener("resize", renderChart);
  updateExportLinks();
  connect();
  loadSessions();
  setInterval(tickAges, 200);
  setInterval(() => { loadSessions(); loadWaterfall(); }, 2000);
});
