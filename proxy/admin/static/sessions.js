// Socket.IO trace monitor dashboard, sessions.js: open and recently closed sessions, and the
// selected session's waterfall (time axis, lifecycle lanes, requests, drag to zoom).
"use strict";

const SESSION_HEADS = {
  open: [["session"], ["transport"], ["remote"], ["open for", "num"], ["namespaces"], ["pending", "num"],
    ["msgs in / out", "num"], ["bytes in / out", "num"], ["heartbeat RTT", "num"]],
  closed: [["session"], ["transport"], ["remote"], ["opened"], ["closed"], ["lasted", "num"], ["reason"],
    ["msgs in / out", "num"], ["bytes in / out", "num"]],
};
function sessionCells(s, now) {
  const msgs = fmtCount(s.messages_in) + " / " + fmtCount(s.messages_out);
  const bytes = fmtBytes(s.bytes_in) + " / " + fmtBytes(s.bytes_out);
  const transport = td(s.transport + (s.upgraded ? " ↑" : ""));
  if (s.state === "closed") {
    const lasted = s.opened_wall === null ? null : s.closed_wall - s.opened_wall;
    return [sidTd(s.session_id), transport, td(s.remote || "–"), td(fmtDateTime(s.opened_wall)),
      td(fmtDateTime(s.closed_wall)), td(fmtDur(lasted), "num"),
      el("td", null, el("span", { class: "pill " + (s.close_ok ? "ok" : "error") }, s.close_reason || "closed")),
      td(msgs, "num"), td(bytes, "num")];
  }
  return [sidTd(s.session_id), transport, td(s.remote || ""), td(fmtDur(now - s.opened_wall), "num"),
    nameTd(s.namespaces.join(" ")), td(s.pending, "num"), td(msgs, "num"), td(bytes, "num"),
    td(fmtDur(s.heartbeat_rtt_s), "num")];
}
async function loadSessions() {
  if (document.hidden || !state.tracking) return;
  const which = state.sessionsState;
  const p = new URLSearchParams({ limit: SESSIONS_PAGE, offset: state.sessionsOffset, state: which });
  const q = $("sessions-search").value.trim();
  if (q) p.set("q", q);
  let data;
  try { data = await getJson("/api/sessions?" + p.toString()); } catch (e) { return; }
  if (which !== state.sessionsState) return;
  if (state.sessionsOffset > 0 && state.sessionsOffset >= data.total) {  // the page emptied
    state.sessionsOffset = Math.max(0, Math.ceil(data.total / SESSIONS_PAGE) - 1) * SESSIONS_PAGE;
    return loadSessions();
  }
  $("sessions-table").tHead.replaceChildren(el("tr", null,
    ...SESSION_HEADS[which].map(([name, cls]) => el("th", { class: cls }, name))));
  const now = serverNow();
  const rows = data.items.map((s) => {
    const tr = el("tr", { class: "session-row " + s.state, "data-sid": s.session_id, title: s.session_id },
      ...sessionCells(s, now));
    if (s.session_id === state.selectedSid) tr.classList.add("selected");
    tr.addEventListener("click", () => selectSession(s.session_id));
    return tr;
  });
  replaceRows($("sessions-table").tBodies[0], rows);
  let empty = "";
  if (!rows.length) {
    if (q) empty = `No ${which === "closed" ? "closed " : ""}sessions match “${q}”.`;
    else if (which === "closed") empty = `No session has closed yet (the ${state.info.closed_sessions_kept} most recent are kept).`;
    else empty = "No open sessions.";
  }
  showEmpty("sessions-empty", empty);
  $("sessions-total").textContent = data.total;
  const first = data.total ? data.offset + 1 : 0, last = data.offset + data.items.length;
  $("sessions-page").textContent = data.total ? `${first}–${last} of ${data.total}` : "0 of 0";
  $("sessions-prev").disabled = data.offset === 0;
  $("sessions-next").disabled = data.offset + data.limit >= data.total;
}
function showSessions(which) {
  state.sessionsState = which;
  state.sessionsOffset = 0;
  $("sessions-open").setAttribute("aria-pressed", String(which === "open"));
  $("sessions-closed").setAttribute("aria-pressed", String(which === "closed"));
  loadSessions();
}
function selectSession(sid) {
  if (sid !== state.selectedSid) state.zoom = null;
  state.selectedSid = sid;
  for (const tr of document.querySelectorAll("tr.session-row")) tr.classList.toggle("selected", tr.dataset.sid === sid);
  loadWaterfall();
}

// ---- waterfall: lifecycle lanes and requests on one time axis, zoomable ----
async function loadWaterfall() {
  const sid = state.selectedSid;
  if (!sid || document.hidden || !state.tracking) return;
  const r = await fetch("/api/sessions/" + encodeURIComponent(sid), { headers: { Accept: "application/json" } });
  if (sid !== state.selectedSid) return;
  if (r.status === 404) {
    state.wf = { sid, session: null, items: [], gone: true };
  } else if (r.ok) {
    const data = await r.json();
    state.wf = { sid, session: data.session, items: (data.timeline && data.timeline.items) || [] };
  } else return;
  renderWaterfall();
}
function waterfallParts(items) {
  const lanes = new Map(), pairs = [], packets = [], seen = new Set();
  for (const it of items) {
    if (!it.session) { packets.push(it); continue; }          // a decoded packet, not a record
    if (it.type === "message") continue;                        // its packet is in the packets lane
    if (it.type === "pair") {
      if (!seen.has(it.span_id)) { seen.add(it.span_id); pairs.push(it); }
      continue;
    }
    if (typeof it.start_wall !== "number") continue;
    const kind = it.kind || it.type;                            // lifecycle kinds; heartbeat records too
    const label = (kind || "event").replace(/_/g, " ") + (it.namespace ? " " + it.namespace : "");
    if (!lanes.has(label)) lanes.set(label, { label, kind, items: [] });
    lanes.get(label).items.push(it);
  }
  pairs.sort((a, b) => a.start_wall - b.start_wall);
  return { lanes: [...lanes.values()], pairs: pairs.slice(-WATERFALL_PAIRS), packets };
}
function niceStep(span) {
  const raw = span / 6, p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}
function fmtOffset(s) {
  if (Math.abs(s) < 1) return "+" + (s * 1000).toFixed(Math.abs(s) < 0.01 ? 1 : 0) + " ms";
  return "+" + (Math.abs(s) < 100 ? s.toFixed(2) : s.toFixed(0)) + " s";
}
function renderWaterfall() {
  const wf = state.wf;
  if (!wf) return;
  $("waterfall-sid").textContent = wf.sid;
  const s = wf.session;
  let meta = "timeline no longer kept (the tracker keeps the most recent closed sessions)";
  if (s && s.state === "closed") {
    meta = `closed ${fmtDateTime(s.closed_wall)} · ${s.close_reason || "closed"} · ${s.transport}${s.upgraded ? " (upgraded)" : ""}`;
  } else if (s) {
    meta = `${s.transport}${s.upgraded ? " (upgraded)" : ""} · ${s.remote || "?"} · heartbeat RTT ${fmtDur(s.heartbeat_rtt_s)}` +
      (s.echo_count ? ` · echo avg ${fmtDur(s.echo_avg_s)} max ${fmtDur(s.echo_max_s)} (${s.echo_count})` : "") +
      ` · ${s.pending} pending`;
  }
  $("waterfall-meta").textContent = meta;
  const { lanes, pairs, packets } = waterfallParts(wf.items);
  const spans = [...pairs, ...lanes.flatMap((l) => l.items)];
  if (!spans.length && !packets.length) {
    $("waterfall").replaceChildren(el("p", { class: "empty" }, wf.gone ? "Nothing kept for this session." : "No requests or lifecycle events yet."));
    $("waterfall-reset").disabled = true;
    return;
  }
  const starts = [...spans.map((x) => x.start_wall), ...packets.map((x) => x.wall)];
  const ends = [...spans.map(endWall), ...packets.map((x) => x.wall)];
  const t0 = Math.min(...starts), t1 = Math.max(...ends);
  const [v0, v1] = state.zoom || [t0, t1 + Math.max((t1 - t0) * 0.02, 0.001)];
  const span = Math.max(v1 - v0, 1e-6);
  const pct = (t) => 100 * (t - v0) / span;
  const visible = (a, b) => b >= v0 && a <= v1;
  const bar = (rec, cls, title) => {
    const b = el("div", { class: "wf-bar " + cls, title });
    b.style.left = pct(rec.start_wall) + "%";
    b.style.width = Math.max(0.25, 100 * (rec.duration_s || 0) / span) + "%";
    b.addEventListener("click", (ev) => { if (!state.wfDragged) openDetail(rec); ev.stopPropagation(); });
    return b;
  };
  const rows = [axisRow(t0, v0, v1)];
  for (const lane of lanes) {
    const shown = lane.items.filter((x) => visible(x.start_wall, endWall(x)));
    const bars = shown.map((x) => bar(x, "kind-" + lane.kind + (x.ok === false ? " outcome-error" : ""),
      `${lane.label} · ${x.ok === false ? (x.error || "failed") : "ok"} · ${fmtDur(x.duration_s)}${x.detail ? " · " + x.detail : ""}`));
    const dur = lane.items.length > 1 ? lane.items.length + "×" : fmtDur(lane.items[0].duration_s);
    rows.push(el("div", { class: "wf-row lane", "data-lane": lane.kind },
      el("span", { class: "wf-label", title: lane.label }, lane.label), el("div", { class: "wf-track" }, ...bars),
      el("span", { class: "wf-dur" }, dur)));
  }
  if (packets.length) {
    const marks = packets.filter((p) => visible(p.wall, p.wall)).map((p) => {
      const m = el("div", { class: "wf-tickmark " + p.direction, title: `${p.direction} ${p.type} ${p.event || ""} ${fmtBytes(p.size)}` });
      m.style.left = pct(p.wall) + "%";
      return m;
    });
    rows.push(el("div", { class: "wf-row lane", "data-lane": "packets" },
      el("span", { class: "wf-label" }, "packets (c2s ▏ s2c)"), el("div", { class: "wf-track" }, ...marks),
      el("span", { class: "wf-dur" }, packets.length)));
  }
  for (const p of pairs) {
    if (!visible(p.start_wall, endWall(p))) continue;
    rows.push(el("div", { class: "wf-row", "data-span": p.span_id },
      el("span", { class: "wf-label", title: p.operation }, p.operation),
      el("div", { class: "wf-track" }, bar(p, "outcome-" + p.outcome, `${p.operation} · ${p.outcome} · ${fmtDur(p.duration_s)}`)),
      el("span", { class: "wf-dur" }, fmtDur(p.duration_s))));
  }
  $("waterfall").replaceChildren(...rows);
  $("waterfall-reset").disabled = state.zoom === null;
}
function axisRow(t0, v0, v1) {
  const step = niceStep(v1 - v0);
  const ticks = [];
  for (let t = Math.ceil((v0 - t0) / step) * step; t0 + t <= v1; t += step) {
    const tick = el("div", { class: "wf-tick" }, fmtOffset(t));
    tick.style.left = (100 * (t0 + t - v0) / (v1 - v0)) + "%";
    ticks.push(tick);
  }
  return el("div", { class: "wf-row wf-axis", "data-from": v0, "data-to": v1 },
    el("span", { class: "wf-label mono", title: "time of the first event shown" }, fmtTime(v0)),
    el("div", { class: "wf-track", id: "wf-axis-track" }, ...ticks),
    el("span", { class: "wf-dur" }, fmtDur(v1 - v0)));
}
function trackBounds() {
  const axis = $("wf-axis-track");
  return axis ? axis.getBoundingClientRect() : null;
}
function onWaterfallDown(ev) {
  const r = trackBounds();
  if (ev.button !== 0 || !r || ev.clientX < r.left || ev.clientX > r.right) return;
  state.wfDragged = false;
  const box = $("waterfall").getBoundingClientRect();
  const sel = el("div", { class: "wf-select" });
  sel.style.left = (ev.clientX - box.left + $("waterfall").scrollLeft) + "px";
  sel.style.width = "0px";
  $("waterfall").append(sel);
  state.wfDrag = { x: ev.clientX, sel, box };
  ev.preventDefault();
}
function onWaterfallMove(ev) {
  const d = state.wfDrag;
  if (!d) return;
  const r = trackBounds();
  const x = Math.min(Math.max(ev.clientX, r.left), r.right);
  d.sel.style.left = (Math.min(x, d.x) - d.box.left) + "px";
  d.sel.style.width = Math.abs(x - d.x) + "px";
  d.sel.style.top = $("waterfall").scrollTop + "px";
  d.sel.style.height = $("waterfall").scrollHeight + "px";
}
function onWaterfallUp(ev) {
  const d = state.wfDrag;
  if (!d) return;
  state.wfDrag = null;
  d.sel.remove();
  const r = trackBounds();
  const x = Math.min(Math.max(ev.clientX, r.left), r.right);
  if (Math.abs(x - d.x) < 5) return;  // a click, not a drag
  state.wfDragged = true;
  setTimeout(() => { state.wfDragged = false; }, 0);
  const axis = document.querySelector(".wf-axis");
  const v0 = Number(axis.dataset.from), v1 = Number(axis.dataset.to);
  const at = (px) => v0 + (v1 - v0) * (px - r.left) / r.width;
  state.zoom = [at(Math.min(x, d.x)), at(Math.max(x, d.x))];
  renderWaterfall();
}

