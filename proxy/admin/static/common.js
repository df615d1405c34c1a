// Socket.IO trace monitor dashboard, common.js: constants, state, formatting, DOM helpers.
// Every string that comes from the traffic is put into the page with textContent only.
// Classic scripts sharing one global scope, loaded in order: common.js (state, formatting),
// sessions.js (sessions, waterfall), detail.js (detail view), dashboard.js (live stream,
// panels, start-up).
"use strict";

const LOG_MAX = 2000;        // activity rows kept in the browser
const LOG_SHOWN = 300;       // activity rows rendered
const PAUSED_MAX = 5000;     // items held while the log is paused
const SESSIONS_PAGE = 50;
const TIMEOUT_SHOWN_S = 60;  // how long a timed-out request stays in "timed out recently"
const WATERFALL_PAIRS = 200; // newest request rows drawn in the waterfall
const TRACE_MARGIN_S = 60;   // time range around a span given to the trace view
const TRACKING_OFF_TEXT = "Tracking is off (tracking.enabled: false, or SOCKET_TRACKING_ENABLED=0): " +
  "the proxy relays without decoding, so there are no sessions, requests or records to show. " +
  "The relay's counters are here; /healthz, /readyz and /metrics keep working.";
const TRACKING_OFF_NOTE = "Tracking is off: nothing to show here.";

const $ = (id) => document.getElementById(id);

const state = {
  info: { auth: false, tracking: true, capture: false, trace_link: null, closed_sessions_kept: 0 },
  tracking: true,
  clockOffset: 0,            // browser time minus server time, seconds
  pending: [],
  pendingTotal: 0,
  timeouts: [],
  timedOutOpen: false,
  history: [],
  rules: [],
  relay: null,
  log: [],
  maxSeq: 0,
  paused: false,
  pausedBuf: [],
  pausedDropped: 0,
  skipped: 0,
  sessionsState: "open",
  sessionsOffset: 0,
  selectedSid: null,
  wf: null,                  // {sid, session, items} of the selected session
  zoom: null,                // [from, to] (server wall seconds) or null: everything
  wfDrag: null,
  wfDragged: false,
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
// A quantile: exact, or (summary.exact false) a bucket estimate shown as "≈" with two
// significant digits, since it is only known to within one bucket (~26 %).
function fmtQuantile(summary, s) {
  if (s === null || s === undefined || summary.exact !== false) return fmtDur(s);
  const ms = s * 1000;
  if (ms >= 1000) return "≈" + (s < 10 ? s.toFixed(1) : Math.round(s).toString()) + " s";
  if (ms >= 100) return "≈" + Math.round(ms / 10) * 10 + " ms";
  return "≈" + (ms >= 10 ? Math.round(ms).toString() : ms.toFixed(ms >= 1 ? 1 : 2)) + " ms";
}
function quantileTd(summary, s) {
  const cell = td(fmtQuantile(summary, s), "num");
  if (summary.exact === false && s !== null && s !== undefined) {
    cell.title = "bucket estimate: at most one bucket (~26 %) above the true value";
  }
  return cell;
}
function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1024) return n + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
  if (n < 1073741824) return (n / 1048576).toFixed(1) + " MiB";
  return (n / 1073741824).toFixed(2) + " GiB";
}
function fmtTime(wall) {
  if (wall === null || wall === undefined) return "–";
  const d = new Date(wall * 1000);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}
function fmtDateTime(wall) {
  if (wall === null || wall === undefined) return "–";
  return new Date(wall * 1000).toLocaleDateString([], { month: "short", day: "numeric" }) + " " + fmtTime(wall);
}
function fmtCount(n) { return n === null || n === undefined ? "–" : String(n); }
function shortSid(sid) { return sid && sid.length > 24 ? sid.slice(0, 24) + "…" : (sid || ""); }
function serverNow() { return Date.now() / 1000 - state.clockOffset; }
function sum(obj) { return Object.values(obj || {}).reduce((a, b) => a + b, 0); }
function endWall(rec) { return rec.type === "message" ? rec.wall : rec.start_wall + (rec.duration_s || 0); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null) continue;
      if (k === "class") node.className = v;
      else if (k === "title") node.title = v;
      else if (k.startsWith("data-") || k.startsWith("aria-")) node.setAttribute(k, v);
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
function nameTd(text) { return el("td", { class: "name", title: text }, text); }
function sidTd(sid) { return el("td", { class: "mono", title: sid }, shortSid(sid)); }
function replaceRows(tbody, rows) { tbody.replaceChildren(...rows); }
function showEmpty(id, text) { $(id).hidden = !text; $(id).textContent = text || ""; }

async function getJson(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" } });
  if (r.status === 401) { location.href = "/login"; throw new Error("unauthorized"); }
  if (!r.ok) throw new Error(url + ": " + r.status);
  return r.json();
}
