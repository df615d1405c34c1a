// Socket.IO trace monitor dashboard, detail.js: the detail view of a record or a pending
// request (timings, events, match key, transports, payloads, trace and span ids, trace link).
"use strict";

function detailFields(pairs) {
  return el("dl", null, ...pairs.filter(([, v]) => v !== undefined).flatMap(([k, v]) =>
    [el("dt", null, k), el("dd", null, v === null || v === "" ? "–" : v)]));
}
function payloadBlock(label, payload) {
  if (!state.info.capture) return [el("h4", null, label), el("p", { class: "empty" }, "Payload capture is off (tracking.capture.enabled).")];
  return [el("h4", null, label + " (as exported, redacted)"), payload === null || payload === undefined
    ? el("p", { class: "empty" }, "none captured") : el("pre", { class: "payload" }, payload)];
}
function traceLink(rec) {
  const link = state.info.trace_link;
  if (!link || !rec.trace_id) return null;
  const url = new URL(link.url);
  for (const [k, v] of Object.entries(link.query || {})) url.searchParams.set(k, v);
  url.searchParams.set("trace_id", rec.trace_id);
  if (rec.span_id) url.searchParams.set("span_id", rec.span_id);
  url.searchParams.set("from", String(Math.floor((rec.start_wall - TRACE_MARGIN_S) * 1e6)));
  url.searchParams.set("to", String(Math.ceil((endWall(rec) + TRACE_MARGIN_S) * 1e6)));
  return el("a", { href: url.toString(), target: "_blank", rel: "noopener noreferrer", id: "trace-link" },
    "open the trace in " + link.name + " ↗");
}
function sessionButton(sid) {
  const b = el("button", { type: "button", class: "link mono", title: "show this session's waterfall" }, sid);
  b.addEventListener("click", () => { $("detail").close(); selectSession(sid); $("waterfall-panel").scrollIntoView(); });
  return b;
}
function timingFields(rec) {
  return [["started", fmtDateTime(rec.start_wall)], ["ended", fmtDateTime(endWall(rec))], ["duration", fmtDur(rec.duration_s)]];
}
function openDetail(rec) {
  let title, parts;
  if (rec.type === "pair") {
    title = rec.operation;
    parts = [el("h4", null, "timings"), detailFields([...timingFields(rec),
      ["first chunk after", rec.chunk_count ? fmtDur(rec.first_chunk_s) : undefined],
      ["chunks", rec.chunk_count ? rec.chunk_count : undefined]]),
    el("h4", null, "request and reply"), detailFields([
      ["outcome", el("span", { class: "pill " + rec.outcome }, rec.outcome)], ["error", rec.error_type],
      ["request event", `${rec.request_event} (${rec.initiator})`], ["reply event", rec.response_event],
      ["rule", rec.rule], ["kind", rec.kind], ["match key", rec.match_key], ["ack id", rec.ack_id],
      ["namespace", rec.namespace],
      ["transports", `${rec.request_transport} → ${rec.response_transport || "–"}`],
      ["sizes", `${fmtBytes(rec.request_size)} → ${fmtBytes(rec.response_size)}`],
      ["slow", rec.slow ? "yes" : "no"], ["late reply to span", rec.linked_span_id || undefined]]),
    ...payloadBlock("request payload", rec.request_payload), ...payloadBlock("reply payload", rec.response_payload)];
  } else if (rec.type === "message") {
    title = rec.event;
    parts = [detailFields([["time", fmtDateTime(rec.wall)], ["direction", rec.direction], ["transport", rec.transport],
      ["namespace", rec.namespace], ["size", fmtBytes(rec.size)]]), ...payloadBlock("payload", rec.payload)];
  } else {
    title = (rec.kind || rec.type || "record").replace(/_/g, " ") + (rec.namespace ? " " + rec.namespace : "");
    const known = new Set(["session", "trace_id", "span_id", "parent_span_id", "start_wall", "duration_s", "type"]);
    parts = [el("h4", null, "timings"), detailFields(timingFields(rec)), el("h4", null, "what happened"),
      detailFields(Object.entries(rec).filter(([k]) => !known.has(k)).map(([k, v]) => [k.replace(/_/g, " "),
        typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)]))];
  }
  parts.push(el("h4", null, "session and trace"), detailFields([["session", sessionButton(rec.session.session_id)],
    ["trace id", rec.trace_id ? el("span", { class: "mono" }, rec.trace_id) : undefined],
    ["span id", rec.span_id ? el("span", { class: "mono" }, rec.span_id) : undefined],
    ["parent span id", rec.parent_span_id || undefined]]));
  const link = traceLink(rec);
  if (link) parts.push(el("p", null, link));
  showDetail(title, parts);
}
function openPendingDetail(p) {
  showDetail(p.operation, [detailFields([["waiting since", fmtDateTime(p.started_wall)],
    ["age", fmtDur(serverNow() - p.started_wall)], ["times out after", fmtDur(p.timeout_s)],
    ["request event", `${p.request_event} (${p.initiator})`], ["rule", p.rule], ["match key", p.match_key],
    ["ack id", p.ack_id], ["namespace", p.namespace], ["session", sessionButton(p.session_id)],
    ["span id", el("span", { class: "mono" }, p.span_id)]])]);
}
function showDetail(title, parts) {
  $("detail-title").textContent = title;
  $("detail-body").replaceChildren(...parts);
  if (!$("detail").open) $("detail").showModal();
}

