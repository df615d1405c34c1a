// Socket.IO trace monitor dashboard, dashboard.js: the live stream and the panels it feeds
// (header, pending, rules, latency chart, activity log, relay counters), and start-up.
"use strict";

// ---- what the server is configured for ----
async function loadInfo() {
  try { state.info = await getJson("/api/info"); } catch (e) { return; }
  $("logout-form").hidden = !state.info.auth;  // nothing to log out of without a token
  applyTracking(state.info.tracking);
}
function applyTracking(on) {
  state.tracking = on;
  $("tracking-badge").hidden = on;
  document.body.classList.toggle("tracking-off", !on);
  $("tracking-off-banner").hidden = on;
  $("tracking-off-banner").textContent = on ? "" : TRACKING_OFF_TEXT;
  for (const panel of document.querySelectorAll(".needs-tracking")) {
    panel.classList.toggle("off", !on);
    const note = panel.querySelector(".tracking-off-note");
    note.hidden = on;
    note.textContent = on ? "" : TRACKING_OFF_NOTE;
  }
}

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
  if (msg.tracking !== undefined && msg.tracking !== state.tracking) applyTracking(msg.tracking);
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
  state.relay = shared.relay;
  if (shared.tracking !== undefined && shared.tracking !== state.tracking) applyTracking(shared.tracking);
  if (shared.metrics) {
    state.pending = shared.pending.items;
    state.pendingTotal = shared.pending.total;
    state.timeouts = shared.timeouts || [];
    state.rules = shared.metrics.rules;
    state.metrics = shared.metrics;
    state.rates = shared.rates;
    state.sinks = shared.sinks;
    state.history.push(shared.latency);
    if (state.history.length > 600) state.history.splice(0, state.history.length - 600);
  }
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
    renderHeader(); renderRelay();
    if (!state.tracking) return;
    renderPending(); renderRules(); renderChart();
    if (!state.paused) renderLog();
    renderPausedCount();
  });
}

// ---- header ----
function renderHeader() {
  const m = state.metrics;
  if (!state.tracking || !m) {
    for (const id of ["stat-sessions", "stat-pending", "stat-rtt", "stat-decode"]) $(id).textContent = "–";
    $("stat-rate").textContent = "–";
    $("stat-transports").textContent = "";
    $("stat-exporters").replaceChildren("none");
    return;
  }
  $("stat-sessions").textContent = sum(m.sessions_by_transport);
  const sampled = m.sampling
    ? ["sample " + m.sampling.sampled_sessions + " / " + m.sampling.sessions + " sessions"]
    : [];
  $("stat-transports").textContent = Object.entries(m.sessions_by_transport)
    .map(([t, n]) => t + " " + n).concat(sampled).join(" · ");
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
        (s.last_error ? " · " + s.last_error : "") + (s.where ? "\n" + s.where : ""),
    }, st === "ok" ? s.name : `${s.name} (${st})`);
  });
  $("stat-exporters").replaceChildren(...(sinks.length ? sinks : ["none"]));
}

function renderRelay() {
  if (!state.relay) return;
  const cells = Object.entries(state.relay).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => {
    const value = typeof v === "object" && v !== null
      ? Object.entries(v).map(([kk, vv]) => kk + " " + vv).join(" · ") : String(v);
    return el("div", { class: "counter", "data-counter": k },
      el("span", { class: "k", title: k }, k.replace(/_/g, " ")), el("span", { class: "v" }, value));
  });
  $("relay-counters").replaceChildren(...(cells.length ? cells : [el("p", { class: "empty" }, "No relay counters.")]));
}

// ---- pending: live requests first, recent timeouts in their own (collapsed) group ----
function renderPending() {
  const live = state.pending.map((p) => {
    const tr = el("tr", { class: "pending-row", "data-span": p.span_id },
      el("td", { class: "num age", "data-start": p.started_wall, "data-timeout": p.timeout_s }),
      td(fmtDur(p.timeout_s), "num"), nameTd(p.operation), nameTd(p.request_event), td(p.ack_id ?? "", "num"),
      td(p.initiator), sidTd(p.session_id));
    tr.addEventListener("click", () => openPendingDetail(p));
    return tr;
  });
  const total = state.pendingTotal || 0;
  if (total > live.length) {
    live.push(el("tr", { class: "more-row" }, el("td", { colSpan: 7 },
      `… and ${total - live.length} younger ones (the ${live.length} oldest are shown)`)));
  }
  replaceRows($("pending-live"), live);
  $("pending-total").textContent = total;
  const now = serverNow();
  const recent = state.timeouts.filter((t) => now - endWall(t) <= TIMEOUT_SHOWN_S).reverse();
  replaceRows($("pending-timedout"), recent.map((t) => {
    const tr = el("tr", { class: "timeout-row timed-out", "data-span": t.span_id },
      el("td", { class: "num", title: "timed out at " + fmtTime(endWall(t)) }, fmtDur(now - endWall(t)) + " ago"),
      td(fmtDur(t.duration_s), "num"), nameTd(t.operation),
      nameTd(t.request_event), td(t.ack_id ?? "", "num"), td(t.initiator), sidTd(t.session.session_id));
    tr.addEventListener("click", () => openDetail(t));
    return tr;
  }));
  $("timedout-count").textContent = recent.length;
  $("pending-timedout-head").hidden = recent.length === 0;
  $("pending-timedout").hidden = !state.timedOutOpen || recent.length === 0;
  $("pending-empty").hidden = total > 0;
  tickAges();
}
function toggleTimedOut() {
  state.timedOutOpen = !state.timedOutOpen;
  $("timedout-toggle").setAttribute("aria-expanded", String(state.timedOutOpen));
  $("timedout-toggle").firstChild.textContent = (state.timedOutOpen ? "▾" : "▸") + " timed out recently ";
  renderPending();
}
function tickAges() {
  const now = serverNow();
  for (const cell of document.querySelectorAll("#pending-live td.age")) {
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
    const lat = r.latency;
    const tr = el("tr", { class: "rule-row", "data-rule": r.rule },
      nameTd(r.rule), td(sum(o), "num"), td(o.error || 0, "num"), td(o.rejected || 0, "num"),
      td(o.timeout || 0, "num"), td(o.late || 0, "num"), td(r.slow, "num"),
      quantileTd(lat, lat.p50_s), quantileTd(lat, lat.p95_s), quantileTd(lat, lat.p99_s),
      td(fmtDur(lat.max_s), "num"));
    if (o.timeout) tr.classList.add("outcome-timeout");
    tr.addEventListener("click", () => { sel.value = r.rule; renderChart(); });
    return tr;
  });
  replaceRows($("rules-table").tBodies[0], rows);
  $("rules-empty").hidden = rows.length > 0;
  renderEcho();
}

// ---- input echo (echo rules): latency from an input to its terminal's first output ----
function renderEcho() {
  const echo = (state.metrics && state.metrics.echo) || [];
  $("echo-box").hidden = echo.length === 0;
  replaceRows($("echo-table").tBodies[0], echo.map((e) => {
    const lat = e.latency;
    return el("tr", { class: "echo-row", "data-rule": e.rule },
      nameTd(e.rule), td(lat.count, "num"), td(e.slow, "num"), td(e.unanswered, "num"),
      quantileTd(lat, lat.p50_s), quantileTd(lat, lat.p95_s), quantileTd(lat, lat.p99_s),
      td(fmtDur(lat.max_s), "num"));
  }));
}

// ---- latency chart (canvas) ----
const COLORS = ["#58a6ff", "#3fb950", "#d29922", "#bc8cff", "#ff7b72", "#39c5cf"];
function renderChart() {
  const canvas = $("latency-chart");
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight || 220;
  if (!w) return;
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

// ---- sessions (open, or recently closed) ----
// ---- activity log: newest end first, in the order of the time shown ----
function describe(rec) {
  if (rec.type === "pair") {
    return { dir: rec.initiator, name: rec.operation, outcome: rec.outcome, dur: rec.duration_s,
      size: rec.request_size + rec.response_size };
  }
  if (rec.type === "message") return { dir: rec.direction, name: rec.event, outcome: null, dur: null, size: rec.size };
  return { dir: "", name: (rec.kind || rec.type) + (rec.namespace ? " " + rec.namespace : "") + (rec.error ? ": " + rec.error : ""),
    outcome: rec.ok === false ? "error" : "ok", dur: rec.duration_s, size: null };
}
function renderLog() {
  const items = state.log.map((item) => [endWall(item.record), item])
    .sort((a, b) => (b[0] - a[0]) || (b[1].seq - a[1].seq)).slice(0, LOG_SHOWN);
  // Rows are rebuilt only when the shown items change: a rebuild on every tick could swap
  // the row under the pointer between mousedown and mouseup, and the click was lost.
  const key = filterParams().toString() + "|" + items.map(([end, item]) => item.seq + "@" + end).join(",");
  if (key === state.logKey) return;
  state.logKey = key;
  const rows = items.map(([end, item]) => {
    const rec = item.record, d = describe(rec);
    const tr = el("tr", { class: "act-row type-" + rec.type + (d.outcome ? " outcome-" + d.outcome : ""), "data-seq": item.seq, "data-end": end },
      td(item.seq, "num"), td(fmtTime(end), "mono"), td(rec.type), td(d.dir), nameTd(d.name),
      el("td", null, d.outcome ? el("span", { class: "pill " + d.outcome }, d.outcome) : ""),
      td(d.dur === null || d.dur === undefined ? "" : fmtDur(d.dur), "num"), td(d.size === null ? "" : fmtBytes(d.size), "num"),
      sidTd(rec.session.session_id));
    tr.addEventListener("click", () => openDetail(rec));
    return tr;
  });
  replaceRows($("activity-table").tBodies[0], rows);
  showEmpty("activity-empty", rows.length ? "" : (filterParams().toString() ? "Nothing matches these filters." : "No activity yet."));
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
document.addEventListener("DOMContentLoaded", async () => {
  for (const id of ["f-session", "f-event"]) $(id).addEventListener("input", onFilterChange);
  for (const id of ["f-outcome", "f-direction"]) $(id).addEventListener("change", onFilterChange);
  $("pause-btn").addEventListener("click", togglePause);
  $("latency-rule").addEventListener("change", renderChart);
  $("timedout-toggle").addEventListener("click", toggleTimedOut);
  $("sessions-search").addEventListener("input", () => { state.sessionsOffset = 0; loadSessions(); });
  $("sessions-open").addEventListener("click", () => showSessions("open"));
  $("sessions-closed").addEventListener("click", () => showSessions("closed"));
  $("sessions-prev").addEventListener("click", () => { state.sessionsOffset = Math.max(0, state.sessionsOffset - SESSIONS_PAGE); loadSessions(); });
  $("sessions-next").addEventListener("click", () => { state.sessionsOffset += SESSIONS_PAGE; loadSessions(); });
  $("waterfall-reset").addEventListener("click", () => { state.zoom = null; renderWaterfall(); });
  $("waterfall").addEventListener("mousedown", onWaterfallDown);
  window.addEventListener("mousemove", onWaterfallMove);
  window.addEventListener("mouseup", onWaterfallUp);
  window.addEventListener("resize", renderChart);
  updateExportLinks();
  await loadInfo();
  connect();
  loadSessions();
  setInterval(tickAges, 200);
  setInterval(() => { loadSessions(); loadWaterfall(); }, 2000);
});
